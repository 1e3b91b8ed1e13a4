"""Writing a gate report where operators can read it (the restricted zone)."""

from __future__ import annotations

import json
from typing import Protocol

from lakehouse.quality.gate import GateResult


class ReportSink(Protocol):
    """What a report is written to: any lakehouse ObjectStore (local or S3)."""

    uri: str

    def put(self, key: str, data: bytes) -> object: ...


def gate_report_key(export_run_id: str) -> str:
    """Default key of a run's gate report inside the restricted zone."""
    return f"exports/{export_run_id}/quality_gate.json"


def report_json(result: GateResult) -> bytes:
    """The report as deterministic JSON bytes (names and counts only, no values)."""
    body = result.report | {"passed": result.passed, "failures": result.failures}
    return (json.dumps(body, indent=2, sort_keys=True, default=str) + "\n").encode()


def write_gate_report(result: GateResult, store: ReportSink, key: str) -> str:
    """Write the report to ``store`` at ``key``; returns its location for printing."""
    store.put(key, report_json(result))
    return f"{store.uri.rstrip('/')}/{key}"
