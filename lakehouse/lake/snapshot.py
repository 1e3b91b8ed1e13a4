"""One pinned version of a Delta table, read through a native Arrow filesystem."""

from __future__ import annotations

import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlparse

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pa_fs
from deltalake import DeltaTable
from deltalake.exceptions import DeltaError

from lakehouse.config import ZoneSettings
from lakehouse.errors import LakeError
from lakehouse.lake.s3 import arrow_filesystem

if TYPE_CHECKING:  # pyarrow.dataset imports pandas: loaded by the first read, not on import
    import pyarrow.dataset as pds


@dataclass(frozen=True)
class Figures:
    """The size of one version, from its log alone (no data file is read)."""

    rows: int
    files: int
    bytes: int


class Snapshot:
    """A table at one version: its rows and its application transactions agree with each other,
    so a writer can decide from them and commit on top of exactly this version."""

    def __init__(self, name: str, delta: DeltaTable, zone: ZoneSettings) -> None:
        self.name = name
        self.delta = delta  # for the lake's writers only
        self.zone = zone

    @property
    def version(self) -> int:
        return self.delta.version()

    def transaction_version(self, app_id: str) -> int | None:
        """The last version committed under ``app_id`` up to this snapshot, if any."""
        return self.delta.transaction_version(app_id)

    def file_uris(self) -> list[str]:
        return self.delta.file_uris()

    def figures(self) -> Figures:
        """Rows, data files and bytes of this version (the log's per-file statistics)."""
        actions = pa.table(self.delta.get_add_actions(flatten=True))
        rows = pc.sum(actions.column("num_records")).as_py() if actions.num_rows else 0
        size = pc.sum(actions.column("size_bytes")).as_py() if actions.num_rows else 0
        return Figures(rows=int(rows or 0), files=actions.num_rows, bytes=int(size or 0))

    def read(self, columns: list[str] | None = None, filters: Any = None) -> pa.Table:
        """Rows of this version. ``filters`` take the DNF form of ``pyarrow.parquet``
        (``[("col", "=", value), ...]``, or a list of such lists: any of them).

        deltalake's default reader hands Arrow a filesystem implemented in Python; Arrow's I/O
        threads then hold Python buffers that may be released after the read has returned, and a
        process that exits at that moment aborts ("terminate called without an active exception").
        A native filesystem keeps Python out of Arrow's threads. A log that delta-rs cannot
        turn into a dataset raises LakeError; missing or altered data files raise Arrow's errors.
        """
        dataset = self.dataset()
        partitions = set(self.delta.metadata().partition_columns)
        expression = _expression(filters, dataset.schema, partitions) if filters else None
        return dataset.to_table(columns=columns, filter=expression)

    def dataset(self) -> pds.Dataset:
        """This version as an Arrow dataset (for scans that push filters down, e.g. DuckDB's)."""
        try:
            return self.delta.to_pyarrow_dataset(filesystem=_table_filesystem(self.zone, self.delta.table_uri))
        except DeltaError as exc:
            raise LakeError(f"table {self.name} cannot be read ({type(exc).__name__})") from None


Filter = tuple[str, str, Any]
_COMPARISONS: dict[str, Callable[[Any, Any], Any]] = {
    "=": operator.eq, "==": operator.eq, "!=": operator.ne,
    "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge,
}


def _expression(filters: Any, schema: pa.Schema, partitions: set[str]) -> Any:
    """DNF filters as one Arrow expression.

    Text and binary columns are compared as the table's type: files that a Delta delete or
    merge rewrote store them as ``string_view``, which Arrow compares (and prunes row groups
    by) against a plain string literal only after a cast. Partition values are not in the files.
    """
    groups: Sequence[Sequence[Filter]] = [filters] if isinstance(filters[0], tuple) else filters
    any_of = None
    for group in groups:
        all_of = None
        for name, op, value in group:
            kind = schema.field(name).type
            column = pc.field(name)
            if name not in partitions and (pa.types.is_string(kind) or pa.types.is_binary(kind)):
                column = column.cast(kind)
            if op in ("in", "not in"):
                term = column.isin(list(value)) if op == "in" else ~column.isin(list(value))
            else:
                term = _COMPARISONS[op](column, value)
            all_of = term if all_of is None else all_of & term
        any_of = all_of if any_of is None else any_of | all_of
    return any_of


def _table_filesystem(zone: ZoneSettings, table_uri: str) -> pa_fs.FileSystem:
    """The table's folder as an Arrow filesystem root (``table_uri`` is percent-encoded)."""
    parsed = urlparse(table_uri)
    if not zone.is_s3:
        path = unquote(parsed.path) if parsed.scheme else table_uri
        return pa_fs.SubTreeFileSystem(path, pa_fs.LocalFileSystem())
    return pa_fs.SubTreeFileSystem(f"{parsed.netloc}{unquote(parsed.path)}".rstrip("/"), arrow_filesystem(zone))
