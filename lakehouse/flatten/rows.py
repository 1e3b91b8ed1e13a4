"""A de-identified dataset → one row for each research table (plus its attribute rows)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache, lru_cache
from typing import Any

from pydicom import Dataset
from pydicom.datadict import dictionary_has_tag, dictionary_keyword
from pydicom.dataelem import DataElement

from lakehouse.dicom.json import ElementVisitor, to_json
from lakehouse.dicom.quiet import quiet_pydicom
from lakehouse.dicom.values import element_values, typed_values, values_number, values_text
from lakehouse.errors import DicomParseError, LakehouseError
from lakehouse.flatten.columns import PromotedColumn, promoted_columns
from lakehouse.lake.schemas import table_spec


@dataclass(frozen=True)
class Provenance:
    """Who wrote a row and under which de-identification; carried by every row."""

    export_run_id: str
    request_id: str
    project: str
    profile: str  # e.g. "DICOM PS3.15 2026d Basic Profile" (lakehouse.deid.profile_label)
    options: tuple[str, ...]  # option names

    def columns(self) -> dict[str, Any]:
        return {
            "export_run_id": self.export_run_id,
            "request_id": self.request_id,
            "project": self.project,
            "deid_profile": self.profile,
            "deid_options": list(self.options),
        }


# Columns of an attribute row that vary per element; the rest (promoted columns and
# provenance) are the same for every attribute row of an instance.
ATTRIBUTE_ROW_COLUMNS = ("path", "tag", "keyword", "vr", "depth", "value_text", "value_number", "value_count")


@dataclass
class FlatRows:
    """The rows one instance contributes to studies, series, instances and attributes.

    Attribute rows are kept as columns (``attribute_columns``, one list per name in
    ``ATTRIBUTE_ROW_COLUMNS``) plus ``attribute_base``, the columns every attribute row of
    the instance shares: rows_to_tables builds Arrow columns from them directly.
    """

    study: dict[str, Any]
    series: dict[str, Any]
    instance: dict[str, Any]
    attribute_base: dict[str, Any]
    attribute_columns: dict[str, list[Any]]

    @property
    def attributes(self) -> list[dict[str, Any]]:
        """The attribute rows as dicts (base columns first, then the per-element ones)."""
        names = tuple(self.attribute_columns)
        return [
            self.attribute_base | dict(zip(names, values, strict=True))
            for values in zip(*self.attribute_columns.values(), strict=True)
        ]


def flatten(
    ds: Dataset,
    provenance: Provenance,
    *,
    object_key: str,
    object_sha256: str,
    object_size: int,
) -> FlatRows:
    """Rows for one de-identified instance. Raises DicomParseError (codes
    ``missing_attribute``, ``json_encode``, ``flatten_failed``) naming tags, never values.
    pydicom's warnings and log records quote values (``Invalid value for VR ...``), so they are
    silenced here as in ``deidentify``: no value reaches stderr or a log."""
    try:
        with quiet_pydicom():
            return _flatten(ds, provenance, object_key, object_sha256, object_size)
    except LakehouseError:
        raise
    except Exception as exc:  # pydicom raises many kinds on malformed values; fail closed
        raise DicomParseError("flatten_failed", f"{type(exc).__name__} while flattening") from exc


def _flatten(
    ds: Dataset, provenance: Provenance, object_key: str, object_sha256: str, object_size: int
) -> FlatRows:
    meta = getattr(ds, "file_meta", None)
    columns: dict[str, list[Any]] = {name: [] for name in ATTRIBUTE_ROW_COLUMNS}
    top: dict[int, tuple[str, list[Any]]] = {}
    try:
        header_json = to_json(ds, _attribute_visitor(columns, top))
    except Exception:
        _promoted_rows(lambda tag: _vr_values(ds.get(tag)), meta)  # a missing key is reported first
        raise
    prov = provenance.columns()
    study, series, instance, base = (row | prov for row in _promoted_rows(top.get, meta))
    instance |= {
        "object_key": object_key,
        "object_sha256": object_sha256,
        "object_size": object_size,
        "header_json": header_json,
    }
    return FlatRows(study, series, instance, base, columns)


@cache
def _promoted_plan(table: str) -> tuple[tuple[PromotedColumn, ...], tuple[str, ...]]:
    """The promoted columns of ``table`` and, in schema order, the non-nullable columns."""
    required = tuple(c.name for c in table_spec(table).columns if not c.nullable)
    return promoted_columns(table), required


def _promoted_rows(
    lookup: Callable[[int], tuple[str, list[Any]] | None], meta: Dataset | None
) -> list[dict[str, Any]]:
    """Promoted columns of studies, series, instances and attributes, in that order;
    ``lookup`` finds a top-level element's VR and values by tag (group 0002 comes from ``meta``)."""
    rows = []
    for table in ("studies", "series", "instances", "attributes"):
        columns, required = _promoted_plan(table)
        row: dict[str, Any] = {}
        for column in columns:
            if column.tag >> 16 == 0x0002:
                found = None if meta is None else _vr_values(meta.get(column.tag))
            else:
                found = lookup(column.tag)
            row[column.name] = None if found is None else typed_values(*found, column.type)
        for name in required:
            if name in row and row[name] is None:
                raise DicomParseError("missing_attribute", f"{name} is absent or empty")
        rows.append(row)
    return rows


def _vr_values(elem: DataElement | None) -> tuple[str, list[Any]] | None:
    return None if elem is None else (elem.VR, element_values(elem))


@lru_cache(maxsize=8192)
def _keyword(tag: int) -> str | None:
    """``DataElement.keyword or None``: repeating-group tags (e.g. 6002,3000) have none."""
    return (dictionary_keyword(tag) or None) if dictionary_has_tag(tag) else None


def _attribute_visitor(columns: dict[str, list[Any]], top: dict[int, tuple[str, list[Any]]]) -> ElementVisitor:
    """An ElementVisitor appending one attribute row per element to ``columns`` and
    collecting the top-level elements' VR and values by tag in ``top``."""
    paths, tags, keywords, vrs, depths, texts, numbers, counts = (
        columns[name].append for name in ATTRIBUTE_ROW_COLUMNS
    )

    def visit(
        tag: int, key: str, path: str, depth: int, vr: str, bulk: bool, values: list[Any], count: int
    ) -> None:
        if depth == 0:
            top[tag] = (vr, values)
        paths(path)
        tags(key)
        keywords(_keyword(tag))
        vrs(vr)
        depths(depth)
        if bulk or not values:
            texts(None)
            numbers(None)
        else:
            texts(values_text(vr, values))
            numbers(values_number(vr, values))
        counts(count)

    return visit
