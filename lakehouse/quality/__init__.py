"""Quality gates that decide whether an export batch may be committed.

``run_gate`` validates the four research tables of a batch with Great Expectations
(suite data: ``schemas/quality/research.json``) plus a free-text identifier search;
``write_gate_report`` puts the report (names and counts, never values) in a store.
"""

from lakehouse.quality.gate import GateResult, preload, run_gate
from lakehouse.quality.report import ReportSink, gate_report_key, report_json, write_gate_report

__all__ = ["GateResult", "ReportSink", "gate_report_key", "preload", "report_json", "run_gate", "write_gate_report"]
