"""Delta tables through deltalake (delta-rs): create, read, idempotent append.

Idempotence uses Delta's application transactions: a writer that commits with
``(app_id, version)`` records it in the same atomic commit, and before writing
again asks ``DeltaTable.transaction_version(app_id)``; a version already there
means the batch is in the table, so the append is skipped.
"""

from __future__ import annotations

from typing import Any, Literal

import pyarrow as pa
from deltalake import CommitProperties, DeltaTable, Transaction, write_deltalake
from deltalake.exceptions import TableNotFoundError

from lakehouse.config import ZoneSettings
from lakehouse.lake.schemas import TableSpec


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
        return table.to_pyarrow_table(columns=columns, filters=filters)

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
        once: returns False (and writes nothing) if that version was already committed."""
        if app_id is not None:
            assert version is not None
            done = self.transaction_version(app_id)
            if done is not None and done >= version:
                return False
        if self.spec is not None:
            self.create()
            if schema_mode is None and isinstance(data, pa.Table):
                data = data.select(self.spec.column_names).cast(self.spec.arrow_schema)
        txns = [Transaction(app_id=app_id, version=version)] if app_id is not None and version is not None else None
        write_deltalake(
            self.uri,
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
