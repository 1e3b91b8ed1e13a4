"""The quality gate of a run: each batch as it lands, then the run as a whole, one report.

Each staged batch is validated once (``lakehouse.quality``, Great Expectations) and its
``GateVerdict`` stored; a resumed run reads verdicts back instead of validating again.
``check_run`` adds the run-wide checks (no instance twice across batches, as many
instance rows as exported objects) and writes the run's one report (names and counts,
never values) to ``RunLayout.gate_report``. Only the driver imports this module.
"""

from __future__ import annotations

import json
from typing import Any

from lakehouse import lake, quality
from lakehouse.export.context import RunContext
from lakehouse.export.errors import GateFailed, StageFailure
from lakehouse.export.results import BatchSummary, GateVerdict
from lakehouse.export.worker import RESEARCH_TABLES


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
    verdicts = [gate_batch(ctx, summary) for summary in summaries]
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
