"""Delta tables through deltalake (delta-rs): one handle per table, its writes named by mode.

A ``Table`` knows where it lives and how it may be written from its spec
(``schemas/tables/<name>.json``); a write its spec does not allow is refused.

Idempotence uses Delta's application transactions: a writer that commits with
``(app_id, version)`` records it in the same atomic commit, and before writing
again asks the table for ``transaction_version(app_id)``; a version already there
means the rows are in the table, so the write is skipped. The check and the commit
use one snapshot of the log.

Serialized append: the caller's ``build`` decides what to write from a *pinned*
snapshot, and the commit goes through that same snapshot with the app transaction
``(app_id, version)``. delta-rs fails a commit when a commit it did not see carries
the same app id (``CommitFailedError``); we then re-read and build again. So for one
app id every commit is based on everything committed before it: a total order given
by the Delta log, with nothing lost or duplicated.

Private zones: deltalake creates files and folders with the process umask (0644/0755 under
the usual 022), so after every write to a table in a local private zone (restricted) the
table's folder is brought to 0700/0600 (``storage.keep_private``), failed writes included.
Nothing is exposed in between: the zone folder is made 0700 before the first write (init
creates it so too), and a table folder is private from its first write on, so whatever
deltalake adds inside it is out of other users' reach until its own mode is fixed. (A
process-wide umask would do it without a sweep, but it is shared by every thread and
would also tighten the research and datasets zones.)
"""

from __future__ import annotations

import functools
import random
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeAlias, TypeVar

import pyarrow as pa
from deltalake import CommitProperties, DeltaTable, Transaction, write_deltalake
from deltalake.exceptions import CommitFailedError, TableNotFoundError

from lakehouse.config import ZoneSettings
from lakehouse.errors import LakeError
from lakehouse.lake.s3 import delta_storage_options
from lakehouse.lake.schemas import TableSpec
from lakehouse.lake.snapshot import Snapshot
from lakehouse.storage import PRIVATE_ZONES, keep_private, private_folders

# Rows to write: one Arrow table, or several streamed one after the other.
Rows: TypeAlias = pa.Table | Iterable[pa.Table]
# build(snapshot) -> (rows to append, app transaction version, result to return)
Build = Callable[[Snapshot], tuple[pa.Table, int, Any]]
MAX_SERIALIZED_ATTEMPTS = 40
_P = ParamSpec("_P")
_R = TypeVar("_R")


def _kept_private(write: Callable[Concatenate[Table, _P], _R]) -> Callable[Concatenate[Table, _P], _R]:
    """A write after which (even a failed one) a private zone's table folder is made private."""

    @functools.wraps(write)
    def wrapper(table: Table, /, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        if table.private_folder is None:
            return write(table, *args, **kwargs)
        root = table.zone.local_path
        private_folders(root, root)  # the zone folder itself, should deltalake be first to need it
        try:
            return write(table, *args, **kwargs)
        finally:
            keep_private(root, table.private_folder)

    return wrapper


class Table:
    """One Delta table at ``<zone>/<spec.path>``, with the writes its spec allows."""

    def __init__(
        self, zone: ZoneSettings, spec: TableSpec, *, project: str | None = None, vacuum_retention_hours: int = 0
    ) -> None:
        self.zone = zone
        self.spec = spec
        self.uri = zone.join(spec.location(project))
        self.storage_options = delta_storage_options(zone)
        self.vacuum_retention_hours = vacuum_retention_hours
        # The table's local folder when its zone is private (its modes are kept 0700/0600).
        self.private_folder: Path | None = None
        if zone.name in PRIVATE_ZONES and not zone.is_s3:
            self.private_folder = zone.local_path / spec.location(project)

    @property
    def name(self) -> str:
        return self.spec.name

    # --- reading --------------------------------------------------------------

    def open(self, version: int | None = None) -> Snapshot | None:
        """The current (or an older) version; None while the table does not exist."""
        try:
            delta = DeltaTable(self.uri, version=version, storage_options=self.storage_options)
        except TableNotFoundError:
            return None
        return Snapshot(self.name, delta, self.zone)

    def snapshot(self) -> Snapshot:
        """The current version, the table created empty from its spec first if missing."""
        return self.open() or self.create()

    def exists(self) -> bool:
        return self.open() is not None

    def version(self) -> int | None:
        snapshot = self.open()
        return None if snapshot is None else snapshot.version

    def rows_committed(self, version: int) -> int | None:
        """Rows the commit of ``version`` added (appended or merged in); None when its commit
        info does not say (e.g. the table's creation) or the table is gone."""
        # Asked of the newest snapshot: delta-rs numbers an older snapshot's history wrongly.
        current = self.open()
        if current is None or version > current.version:
            return None
        history = current.delta.history(current.version - version + 1)
        entry = next((e for e in history if e.get("version") == version), {})
        metrics = entry.get("operationMetrics") or {}
        for key in ("num_added_rows", "num_target_rows_inserted"):
            if key in metrics:
                return int(metrics[key])
        return None

    def transaction_version(self, app_id: str) -> int | None:
        snapshot = self.open()
        return None if snapshot is None else snapshot.transaction_version(app_id)

    def read(self, columns: list[str] | None = None, filters: Any = None) -> pa.Table:
        """The current rows, or none in the spec's schema while the table does not exist."""
        snapshot = self.open()
        if snapshot is not None:
            return snapshot.read(columns=columns, filters=filters)
        empty = self.spec.arrow_schema.empty_table()
        return empty.select(columns) if columns else empty

    @_kept_private
    def create(self) -> Snapshot:
        """Create the (empty) table from its spec, column comments included, unless it exists."""
        try:
            DeltaTable.create(
                self.uri,
                schema=self.spec.arrow_schema,
                mode="ignore",
                partition_by=list(self.spec.partition_by) or None,
                name=self.spec.name,
                description=self.spec.description,
                configuration=dict(self.spec.properties) or None,
                storage_options=self.storage_options,
            )
        except Exception:
            # Another process created it between our look and our create; anything else re-raises.
            if self.open() is None:
                raise
        snapshot = self.open()
        if snapshot is None:
            raise LakeError(f"could not create table {self.name}")
        return snapshot

    # --- writing --------------------------------------------------------------

    def commit_once(self, rows: Rows, *, app_id: str, version: int, metadata: Mapping[str, Any] | None = None) -> bool:
        """Add rows at most once per ``(app_id, version)``, the way the spec's write mode says
        (``append`` or ``insert_new``). False when that version was already committed."""
        if self.spec.write_mode == "insert_new":
            return self.insert_new(rows, app_id=app_id, version=version, metadata=metadata)
        return self.append(rows, app_id=app_id, version=version, metadata=metadata)

    @_kept_private
    def append(
        self,
        rows: Rows,
        *,
        app_id: str | None = None,
        version: int | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> bool:
        """Append rows in one commit (columns conformed to the spec; new spec columns evolve the
        table by schema merge). With ``app_id``/``version`` at most once: False, and nothing
        written, when that version was already committed."""
        self._require("append")
        snapshot = self.snapshot()
        if app_id is not None and _done(snapshot, app_id, version):
            return False
        write_deltalake(
            snapshot.delta,
            self._conformed(rows),
            mode="append",
            schema_mode="merge",
            commit_properties=_commit_properties(metadata, app_id, version),
        )
        return True

    @_kept_private
    def merge(self, rows: pa.Table, *, metadata: Mapping[str, Any] | None = None) -> None:
        """Insert or replace rows by the spec's keys in one atomic commit. Replaying the same
        rows gives the same table, so a writer killed between commits converges on re-run."""
        self._require("merge")
        if rows.num_rows == 0:
            return
        (
            self._merger(self.snapshot(), self.spec.conform(rows), _commit_properties(metadata, None, None))
            .when_matched_update_all()
            .when_not_matched_insert_all()
            .execute()
        )

    @_kept_private
    def insert_new(
        self, rows: Rows, *, app_id: str, version: int, metadata: Mapping[str, Any] | None = None
    ) -> bool:
        """Insert rows whose keys are not in the table yet (the first row per key wins), at most
        once per ``(app_id, version)``; rows shared by many writers (studies, series) land once."""
        self._require("insert_new")
        snapshot = self.snapshot()
        if _done(snapshot, app_id, version):
            return False
        tables = [rows] if isinstance(rows, pa.Table) else list(rows)
        conformed = [self.spec.conform(t) for t in tables if t.num_rows]
        data = pa.concat_tables(conformed) if conformed else self.spec.arrow_schema.empty_table()
        data = _first_per_key(data, self.spec.keys)
        # With no new row delta-rs commits nothing (and records no transaction); a re-run
        # then finds nothing new again, so the table still holds each row once.
        self._merger(snapshot, data, _commit_properties(metadata, app_id, version)).when_not_matched_insert_all().execute()
        return True

    @_kept_private
    def append_serialized(self, app_id: str, build: Build, *, metadata: Mapping[str, Any] | None = None) -> Any:
        """Append what ``build`` decides from a pinned snapshot; on a concurrent commit to the
        same ``app_id`` re-read and call ``build`` again (it may raise, e.g. Refused)."""
        self._require("append_serialized")
        for attempt in range(MAX_SERIALIZED_ATTEMPTS):
            snapshot = self.snapshot()
            rows, txn_version, result = build(snapshot)
            try:
                write_deltalake(
                    snapshot.delta,
                    self.spec.conform(rows),
                    mode="append",
                    schema_mode="merge",
                    commit_properties=_commit_properties(metadata, app_id, txn_version),
                )
                return result
            except CommitFailedError:
                time.sleep(random.uniform(0.01, 0.05) * (1 + attempt))
        raise LakeError(f"gave up appending to {self.name} after {MAX_SERIALIZED_ATTEMPTS} concurrent conflicts")

    @_kept_private
    def delete_where(self, predicate: str) -> int:
        """Delete the rows matching a SQL ``predicate`` (one commit), then vacuum with the
        configured retention so their files leave storage too, not only the current version.
        Returns the number of rows deleted."""
        if not self.spec.deletable:
            raise LakeError(f"table {self.name} does not allow deleting rows (see its schema's 'deletable')")
        snapshot = self.open()
        if snapshot is None:
            return 0
        metrics = snapshot.delta.delete(predicate)
        snapshot.delta.vacuum(
            retention_hours=self.vacuum_retention_hours, dry_run=False, enforce_retention_duration=False
        )
        return int(metrics.get("num_deleted_rows", 0) or 0)

    # --- helpers --------------------------------------------------------------

    def _require(self, mode: str) -> None:
        if self.spec.write_mode != mode:
            raise LakeError(
                f"table {self.name} is written by {self.spec.write_mode}, not {mode} (see its schema's 'write_mode')"
            )

    def _conformed(self, rows: Rows) -> pa.Table | pa.RecordBatchReader:
        if isinstance(rows, pa.Table):
            return self.spec.conform(rows)
        spec = self.spec

        def batches() -> Iterator[pa.RecordBatch]:
            for table in rows:  # one table in memory at a time
                yield from spec.conform(table).to_batches()

        return pa.RecordBatchReader.from_batches(spec.arrow_schema, batches())

    def _merger(self, snapshot: Snapshot, source: pa.Table, properties: CommitProperties) -> Any:
        return snapshot.delta.merge(
            source,
            predicate=" AND ".join(f"t.{k} = s.{k}" for k in self.spec.keys),
            source_alias="s",
            target_alias="t",
            merge_schema=True,
            commit_properties=properties,
        )


def in_list(column: str, values: Iterable[str]) -> str:
    """SQL ``column IN (...)`` for ``delete_where`` (values quoted; no values matches nothing)."""
    quoted = ", ".join("'" + v.replace("'", "''") + "'" for v in sorted(set(values)))
    return f"{column} IN ({quoted})" if quoted else "FALSE"


def _done(snapshot: Snapshot, app_id: str, version: int | None) -> bool:
    if version is None:
        raise LakeError("an application transaction needs a version")
    done = snapshot.transaction_version(app_id)
    return done is not None and done >= version


def _commit_properties(
    metadata: Mapping[str, Any] | None, app_id: str | None, version: int | None
) -> CommitProperties:
    txns = [Transaction(app_id=app_id, version=version)] if app_id is not None and version is not None else None
    custom = {k: str(v) for k, v in metadata.items()} if metadata else None
    return CommitProperties(custom_metadata=custom, app_transactions=txns)


def _first_per_key(data: pa.Table, keys: tuple[str, ...]) -> pa.Table:
    if data.num_rows == 0:
        return data
    seen: set[tuple[Any, ...]] = set()
    first = []
    for key in zip(*(data.column(k).to_pylist() for k in keys), strict=True):
        first.append(key not in seen)
        seen.add(key)
    return data.filter(pa.array(first))

