"""Which column of a research table comes from where, decided by the schema files.

A column whose name is a DICOM keyword is *promoted*: its value is that attribute
of the instance's top-level dataset (group 0002 from the file meta), converted to
the column type. Every other column must be one flatten computes itself
(provenance, object facts, header JSON, attribute rows). Adding a keyword column to
``schemas/tables/<name>.json`` is therefore all it takes to promote an attribute.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from pydicom.datadict import tag_for_keyword

from lakehouse.errors import LakeError
from lakehouse.lake.schemas import TableSpec, table_spec

RESEARCH_TABLES = ("studies", "series", "instances", "attributes")

PROVENANCE_COLUMNS = ("export_run_id", "request_id", "project", "deid_profile", "deid_options")
COMPUTED_COLUMNS: dict[str, frozenset[str]] = {
    "studies": frozenset(PROVENANCE_COLUMNS),
    "series": frozenset(PROVENANCE_COLUMNS),
    "instances": frozenset(PROVENANCE_COLUMNS)
    | {"object_key", "object_sha256", "object_size", "header_json"},
    "attributes": frozenset(PROVENANCE_COLUMNS)
    | {"path", "tag", "keyword", "vr", "depth", "value_text", "value_number", "value_count"},
}

# Keys of each table; attributes also carry the instance key as a promoted-style column.
KEY_COLUMNS = {
    "studies": ("StudyInstanceUID",),
    "series": ("SeriesInstanceUID",),
    "instances": ("SOPInstanceUID",),
    "attributes": ("SOPInstanceUID", "path"),
}


@dataclass(frozen=True)
class PromotedColumn:
    name: str  # the DICOM keyword
    tag: int
    type: str  # column type from the schema file


@cache
def promoted_columns(table: str) -> tuple[PromotedColumn, ...]:
    """The promoted columns of a research table, from its schema file."""
    return promoted_from_spec(table_spec(table), COMPUTED_COLUMNS[table])


def promoted_from_spec(spec: TableSpec, computed: frozenset[str]) -> tuple[PromotedColumn, ...]:
    """Every column not in ``computed`` must be a DICOM keyword; raises LakeError otherwise."""
    promoted = []
    for column in spec.columns:
        if column.name in computed:
            continue
        tag = tag_for_keyword(column.name)
        if tag is None:
            raise LakeError(
                f"column {column.name!r} of table {spec.name!r} is neither a DICOM keyword "
                "nor a column flatten computes"
            )
        promoted.append(PromotedColumn(column.name, int(tag), column.type))
    return tuple(promoted)
