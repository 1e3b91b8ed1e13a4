"""The quality gate of a run: batches as they land, then the run as a whole, one report.

Staged batches are validated (``lakehouse.quality``, Great Expectations) on a thread of the
driver (``BatchGate``) while workers go on, several per call: what landed while the previous
call ran is validated together, since a GX call costs about the same for one batch as for
ten and the first call waits seconds for GX's import. A group that passes passes for each of
its batches (each check is of rows, keys or identifiers, and the group holds every batch's);
a group that fails is validated again batch by batch, so the report names the failing batch.
Each batch's ``GateVerdict`` is stored once; a resumed run reads verdicts back instead of
validating again.
``check_run`` adds the run-wide checks (no instance twice across batches, as many
instance rows as exported objects) and writes the run's one report (names and counts,
never values) to ``RunLayout.gate_report``. Only the driver imports this module.
"""

from __future__ import annotations

import json
import queue
import threading
from collections import Counter
from collections.abc import Callable
from typing import Any

import pyarrow as pa

from lakehouse import lake, quality
from lakehouse.export.context import RunContext
from lakehouse.export.errors import GateFailed, StageFailure
from lakehouse.export.results import BatchSummary, GateVerdict
from lakehouse.export.worker import RESEARCH_TABLES

SPLIT_ACROSS_BATCHES = ("studies", "series")  # tables whose rows repeat in each batch of the entity
GROUP_OBJECTS = 2000  # at most this many objects' tables in one GX call (about 300 MB of frames)


class BatchGate:
    """Gates staged batches on a thread of the driver, several per GX call (see above).

    The thread waits until ``group`` batches are staged (a third of the run's, at most
    ``GROUP_OBJECTS`` objects' worth: what one call holds in memory) or the run's last one is.
    ``submit`` returns at once; ``close`` waits for every submitted batch's verdict and raises
    what the thread raised (``submit`` does so early)."""

    def __init__(self, ctx: RunContext, checkpoint: Callable[[str], None], batches: int) -> None:
        self._ctx = ctx
        self._checkpoint = checkpoint  # fault injection: ``after_gate:<batch>``
        by_memory = GROUP_OBJECTS // max(1, ctx.settings.export.batch_size)
        self.group = max(1, min(-(-batches // 3), by_memory))
        self._queue: queue.SimpleQueue[BatchSummary | None] = queue.SimpleQueue()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="lakehouse-gate", daemon=True)
        self._thread.start()

    def submit(self, summary: BatchSummary) -> None:
        self.raise_failure()
        self._queue.put(summary)

    def close(self, *, quietly: bool = False) -> None:
        """Wait for the verdicts; ``quietly`` when the run already fails for another reason."""
        self._queue.put(None)
        self._thread.join()
        if not quietly:
            self.raise_failure()

    def raise_failure(self) -> None:
        if self._error is not None:
            raise self._error

    def _run(self) -> None:
        try:
            quality.warm_up()  # GX's import, while the first batches are de-identified
            staged: list[BatchSummary] = []
            done = False
            while not done:
                arrived = [self._queue.get()]
                while not self._queue.empty():
                    arrived.append(self._queue.get())
                done = None in arrived
                staged += [s for s in arrived if s is not None]
                if staged and (done or len(staged) >= self.group):
                    for verdict in gate_batches(self._ctx, staged):
                        self._checkpoint(f"after_gate:{verdict.batch}")
                    staged = []
        except BaseException as exc:  # noqa: BLE001 - handed to the driver thread, which raises it
            self._error = exc


def gate_batches(ctx: RunContext, summaries: list[BatchSummary]) -> list[GateVerdict]:
    """The verdicts on staged batches: validated together in one call where they pass."""
    todo = [s for s in summaries if not ctx.restricted.exists(ctx.layout.verdict(s.batch))]
    if len(todo) > 1:
        tables = {name: _together(ctx, name, todo) for name in RESEARCH_TABLES}
        result = quality.run_gate(
            tables,
            forbidden_values={value for s in todo for value in s.forbidden},
            expected_instances=sum(s.exported for s in todo),
        )
        if result.passed:
            together = [s.name for s in todo]
            for summary in todo:
                verdict = GateVerdict(summary.batch, True, report={**result.report, "validated_together": together})
                ctx.restricted.put(ctx.layout.verdict(summary.batch), verdict.to_json())
    return [gate_batch(ctx, summary) for summary in summaries]


def _together(ctx: RunContext, name: str, summaries: list[BatchSummary]) -> pa.Table:
    """One staged table of several batches. A study or series split between batches has a row
    in each: a row equal to one of an earlier batch is dropped, so keys stay unique as in each
    batch alone. A row that differs stays: the group then fails its unique check and each batch
    is validated alone, so every row that may be committed is validated. Equal rows have equal
    keys, so only rows whose key is in several batches are compared."""
    staged = [ctx.staged_table(name, s.batch) for s in summaries]
    if name in SPLIT_ACROSS_BATCHES:
        keys = [_row_keys(table, lake.table_spec(name).keys) for table in staged]
        in_batches = Counter(key for batch_keys in keys for key in set(batch_keys))
        earlier: set[str] = set()
        for i, table in enumerate(staged):
            shared = [j for j, key in enumerate(keys[i]) if in_batches[key] > 1]
            if not shared:
                continue
            rows = [json.dumps(row, sort_keys=True, default=str) for row in table.take(shared).to_pylist()]
            repeated = {j for j, row in zip(shared, rows, strict=True) if row in earlier}
            earlier.update(rows)
            if repeated:
                staged[i] = table.filter(pa.array([j not in repeated for j in range(table.num_rows)], pa.bool_()))
    return pa.concat_tables(staged, promote_options="default")


def _row_keys(table: pa.Table, columns: tuple[str, ...]) -> list[tuple[object, ...]]:
    return list(zip(*(table.column(c).to_pylist() for c in columns), strict=True))


def gate_batch(ctx: RunContext, summary: BatchSummary) -> GateVerdict:
    """The verdict on one staged batch: validated now, or read back if it was already."""
    key = ctx.layout.verdict(summary.batch)
    if ctx.restricted.exists(key):
        return GateVerdict.from_json(ctx.restricted.get(key))
    tables = {name: ctx.staged_table(name, summary.batch) for name in RESEARCH_TABLES}
    result = quality.run_gate(tables, forbidden_values=set(summary.forbidden), expected_instances=summary.exported)
    verdict = GateVerdict.of(summary.batch, result)
    ctx.restricted.put(key, verdict.to_json())
    return verdict


def check_run(ctx: RunContext, summaries: list[BatchSummary]) -> str:
    """Combine the batches' verdicts with the run-wide checks and write the report.

    Returns the report's key in the restricted zone; raises GateFailed (naming the first
    failing batch) when any check failed.
    """
    verdicts = gate_batches(ctx, summaries)  # those a resumed run finds without a verdict, together
    failures = [f"batch {v.name}: {failure}" for v in verdicts for failure in v.failures]
    failures += _run_checks(ctx, exported=sum(s.exported for s in summaries))
    key = ctx.layout.gate_report
    ctx.restricted.put(key, _report(ctx, verdicts, failures))
    if failures:
        failed = [v.name for v in verdicts if not v.passed]
        reason = f"quality gate failed ({len(failures)} checks); report: {key}"
        raise GateFailed(StageFailure("gate", failed[0] if failed else None, reason), key)
    return key


def _run_checks(ctx: RunContext, *, exported: int) -> list[str]:
    """Checks no single batch can make: instance keys across batches, total row count."""
    failures = []
    seen: set[str] = set()
    duplicates = 0
    (instance_key,) = lake.table_spec("instances").keys
    for table in ctx.staged_tables("instances"):
        for uid in table.column(instance_key).to_pylist():
            duplicates += uid in seen
            seen.add(uid)
    if duplicates:
        failures.append(f"instances: {duplicates} {instance_key} values repeat across batches")
    if len(seen) + duplicates != exported:
        failures.append(f"instances: {len(seen) + duplicates} rows, expected {exported} (manifest minus quarantine)")
    return failures


def _report(ctx: RunContext, verdicts: list[GateVerdict], failures: list[str]) -> bytes:
    report: dict[str, Any] = {
        "run_id": ctx.state.run_id,
        "request_id": ctx.state.request_id,
        "passed": not failures,
        "failures": failures,
        "batches": [{"batch": v.name, **v.report} for v in verdicts],
    }
    return json.dumps(report, indent=2, default=str).encode()
