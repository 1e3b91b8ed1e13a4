"""Delta tables through deltalake (delta-rs): create, read, idempotent append.

Idempotence uses Delta's application transactions: a writer that commits with
``(app_id, version)`` records it in the same atomic commit, and before writing
again asks ``DeltaTable.transaction_version(app_id)``; a version already there
means the batch is in the table, so the append is skipped.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Literal
from urllib.parse import unquote, urlparse

import pyarrow as pa
import pyarrow.fs as pa_fs
import pyarrow.parquet as pq
from deltalake import CommitProperties, DeltaTable, Transaction, write_deltalake
from deltalake.exceptions import TableNotFoundError

from lakehouse.config import ZoneSettings
from lakehouse.lake.schemas import TableSpec


def read_snapshot(
    table: DeltaTable, zone: ZoneSettings, columns: list[str] | None = None, filters: Any = None
) -> pa.Table:
    """Rows of one snapshot, read through a native Arrow filesystem.

    deltalake's default reader hands Arrow a filesystem implemented in Python; Arrow's I/O
    threads then hold Python buffers that may be released after the read has returned, and a
    process that exits at that moment aborts ("terminate called without an active exception").
    A native filesystem keeps Python out of Arrow's threads. ``filters`` take the DNF form of
    ``pyarrow.parquet`` (``[("col", "=", value), ...]``).
    """
    dataset = table.to_pyarrow_dataset(filesystem=_table_filesystem(zone, table.table_uri))
    expression = pq.filters_to_expression(filters) if filters else None
    return dataset.to_table(columns=columns, filter=expression)


def _table_filesystem(zone: ZoneSettings, table_uri: str) -> pa_fs.FileSystem:
    """The table's folder as an Arrow filesystem root (``table_uri`` is percent-encoded)."""
    parsed = urlparse(table_uri)
    if not zone.is_s3:
        path = unquote(parsed.path) if parsed.scheme else table_uri
        return pa_fs.SubTreeFileSystem(path, pa_fs.LocalFileSystem())
    return pa_fs.SubTreeFileSystem(f"{parsed.netloc}{unquote(parsed.path)}".rstrip("/"), _s3_filesystem(zone))


@lru_cache(maxsize=8)
def _s3_filesystem(zone: ZoneSettings) -> pa_fs.S3FileSystem:
    """Arrow's S3 client for a zone (credentials as given, else the AWS default chain)."""
    options: dict[str, Any] = {"region": zone.region}
    if zone.endpoint_url:
        endpoint = urlparse(zone.endpoint_url)
        options["endpoint_override"] = endpoint.netloc or endpoint.path
        options["scheme"] = endpoint.scheme or "https"
    if zone.access_key_id:
        options["access_key"] = zone.access_key_id
        options["secret_key"] = zone.secret_access_key
    return pa_fs.S3FileSystem(**options)


class DeltaLocation:
    """One Delta table at ``zone/<path>``, with the zone's storage options."""

    def __init__(self, zone: ZoneSettings, path: str, spec: TableSpec | None = None) -> None:
        self.zone = zone
        self.uri = zone.join(path)
        self.spec = spec
        self.storage_options = zone.storage_options()

    def open(self, version: int | None = None) -> DeltaTable | None:
        try:
            return DeltaTable(self.uri, version=version, storage_options=self.storage_options)
        except TableNotFoundError:
            return None

    def exists(self) -> bool:
        return self.open() is not None

    def read(self, columns: list[str] | None = None, filters: Any = None) -> pa.Table:
        """The current table, or an empty one in the spec's schema when it does not exist yet."""
        table = self.open()
        if table is None:
            if self.spec is None:
                return pa.table({})
            empty = self.spec.arrow_schema.empty_table()
            return empty.select(columns) if columns else empty
        return read_snapshot(table, self.zone, columns=columns, filters=filters)

    def create(self) -> DeltaTable:
        """Create the (empty) table from its spec if it does not exist yet."""
        existing = self.open()
        if existing is not None:
            return existing
        assert self.spec is not None, "creating a table needs its spec"
        try:
            return DeltaTable.create(
                self.uri,
                schema=self.spec.arrow_schema,
                mode="ignore",
                partition_by=list(self.spec.partition_by) or None,
                name=self.spec.name,
                description=self.spec.description,
                storage_options=self.storage_options,
            )
        except Exception:
            # Another process created it between our check and our create.
            table = self.open()
            if table is None:
                raise
            return table

    def transaction_version(self, app_id: str) -> int | None:
        table = self.open()
        return None if table is None else table.transaction_version(app_id)

    def append(
        self,
        data: pa.Table | pa.RecordBatchReader,
        *,
        app_id: str | None = None,
        version: int | None = None,
        metadata: dict[str, Any] | None = None,
        schema_mode: Literal["merge", "overwrite"] | None = None,
    ) -> bool:
        """Append rows in one commit. With ``app_id``/``version`` the append happens at most
        once: returns False (and writes nothing) if that version was already committed.
        The check and the write use one snapshot of the log, read once."""
        table = self.create() if self.spec is not None else self.open()
        if app_id is not None:
            assert version is not None
            done = None if table is None else table.transaction_version(app_id)
            if done is not None and done >= version:
                return False
        if self.spec is not None and schema_mode is None and isinstance(data, pa.Table):
            data = self.spec.conform(data)
        txns = [Transaction(app_id=app_id, version=version)] if app_id is not None and version is not None else None
        write_deltalake(
            self.uri if table is None else table,
            data,
            mode="append",
            schema_mode=schema_mode,
            storage_options=self.storage_options,
            commit_properties=CommitProperties(custom_metadata=metadata, app_transactions=txns),
        )
        return True

    def version(self) -> int | None:
        table = self.open()
        return None if table is None else table.version()
