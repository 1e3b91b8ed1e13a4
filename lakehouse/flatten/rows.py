"""A de-identified dataset → one row for each research table (plus its attribute rows)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydicom import Dataset
from pydicom.dataelem import DataElement

from lakehouse.dicom.json import is_bulk_data, to_json
from lakehouse.dicom.values import typed_value, value_count, value_number, value_text
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


@dataclass
class FlatRows:
    """The rows one instance contributes to studies, series, instances and attributes."""

    study: dict[str, Any]
    series: dict[str, Any]
    instance: dict[str, Any]
    attributes: list[dict[str, Any]] = field(default_factory=list)


def flatten(
    ds: Dataset,
    provenance: Provenance,
    *,
    object_key: str,
    object_sha256: str,
    object_size: int,
) -> FlatRows:
    """Rows for one de-identified instance. Raises DicomParseError (codes
    ``missing_attribute``, ``json_encode``, ``flatten_failed``) naming tags, never values."""
    try:
        return _flatten(ds, provenance, object_key, object_sha256, object_size)
    except LakehouseError:
        raise
    except Exception as exc:  # pydicom raises many kinds on malformed values; fail closed
        raise DicomParseError("flatten_failed", f"{type(exc).__name__} while flattening") from exc


def _flatten(
    ds: Dataset, provenance: Provenance, object_key: str, object_sha256: str, object_size: int
) -> FlatRows:
    prov = provenance.columns()
    study = _promoted_row("studies", ds) | prov
    series = _promoted_row("series", ds) | prov
    instance = _promoted_row("instances", ds) | prov
    instance |= {
        "object_key": object_key,
        "object_sha256": object_sha256,
        "object_size": object_size,
        "header_json": to_json(ds),
    }
    base = _promoted_row("attributes", ds) | prov
    attributes: list[dict[str, Any]] = []
    _walk(ds, "", 0, base, attributes)
    return FlatRows(study=study, series=series, instance=instance, attributes=attributes)


def _promoted_row(table: str, ds: Dataset) -> dict[str, Any]:
    row: dict[str, Any] = {}
    for column in promoted_columns(table):
        elem = _element(ds, column)
        row[column.name] = None if elem is None else typed_value(elem, column.type)
    for spec_column in table_spec(table).columns:
        if not spec_column.nullable and spec_column.name in row and row[spec_column.name] is None:
            raise DicomParseError("missing_attribute", f"{spec_column.name} is absent or empty")
    return row


def _element(ds: Dataset, column: PromotedColumn) -> DataElement | None:
    source = ds
    if column.tag >> 16 == 0x0002:
        source = getattr(ds, "file_meta", None) or Dataset()
    return source.get(column.tag)


def _walk(ds: Dataset, prefix: str, depth: int, base: dict[str, Any], out: list[dict[str, Any]]) -> None:
    for elem in ds:
        tag = f"{int(elem.tag):08X}"
        path = prefix + tag
        bulk = is_bulk_data(elem)
        out.append(
            base
            | {
                "path": path,
                "tag": tag,
                "keyword": elem.keyword or None,
                "vr": str(elem.VR),
                "depth": depth,
                "value_text": None if bulk else value_text(elem),
                "value_number": None if bulk else value_number(elem),
                "value_count": value_count(elem),
            }
        )
        if elem.VR == "SQ":
            for index, item in enumerate(elem.value or ()):
                _walk(item, f"{path}[{index}].", depth + 1, base, out)
