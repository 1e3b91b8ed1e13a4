"""The export job: an approved request becomes de-identified objects and Delta tables.

lease (one writer per project) → plan (governance manifest minus opt-outs and what is
already exported) → execute batches (local process pool or Spark) → quality gate →
governance re-checked → lineage, objects, tables published exactly once (Delta application
transactions) → audit.

Modules, in the order a run uses them: ``lease``, ``staging`` (sweeping what ended runs
left), ``plan``, ``context`` (what the steps share), ``worker`` and ``engines`` (batches),
``gate``, ``commit``; ``purge`` withdraws what was published. ``layout`` names every key
of a run, ``results`` the typed hand-offs between steps, ``errors`` the failed stage.
"""

from lakehouse.export.errors import ExportStageError, GateFailed, LeaseHeld, LeaseLost, StageFailure
from lakehouse.export.layout import RunLayout
from lakehouse.export.purge import PurgeResult, purge_patient, purge_request
from lakehouse.export.results import BatchSummary, GateVerdict, ObjectOutcome
from lakehouse.export.run import ExportOutcome, export_runs, export_status, run_export
from lakehouse.export.staging import void_request_runs
from lakehouse.export.state import RunState

__all__ = [
    "BatchSummary",
    "ExportOutcome",
    "ExportStageError",
    "GateFailed",
    "GateVerdict",
    "LeaseHeld",
    "LeaseLost",
    "ObjectOutcome",
    "PurgeResult",
    "RunLayout",
    "RunState",
    "StageFailure",
    "export_runs",
    "export_status",
    "purge_patient",
    "purge_request",
    "run_export",
    "void_request_runs",
]
