"""The export job: an approved request becomes de-identified objects and Delta tables.

lease (one writer per project) → plan (governance manifest minus opt-outs and what is
already exported) → execute batches (local process pool or Spark) → quality gate →
governance re-checked → lineage, objects, tables published exactly once (Delta application
transactions) → audit.

Modules, in the order a run uses them: ``lease``, ``staging`` (sweeping what ended runs
left), ``plan``, ``context`` (what the steps share), ``worker`` and ``engines`` (batches),
``gate``, ``commit``; ``restore`` (an operator's restores of archived objects a run waits
for); ``purge`` withdraws what was published. ``layout`` names every key
of a run, ``results`` the typed hand-offs between steps, ``errors`` the failed stage,
``keys`` the project key and zone credentials (workers find their own), ``progress`` how far
a run is, logged for runs nobody watches.
"""

from lakehouse.export.errors import ExportStageError, GateFailed, LeaseHeld, LeaseLost, StageFailure
from lakehouse.export.layout import RunLayout
from lakehouse.export.purge import PurgeResult, purge_patient, purge_request
from lakehouse.export.restore import RestorePlan, RestoreResult, plan_restore, request_restores
from lakehouse.export.results import BatchSummary, BatchWaiting, GateVerdict, ObjectOutcome
from lakehouse.export.run import ExportOutcome, export_runs, export_status, run_export
from lakehouse.export.staging import void_request_runs
from lakehouse.export.state import RunState

__all__ = [
    "BatchSummary",
    "BatchWaiting",
    "ExportOutcome",
    "ExportStageError",
    "GateFailed",
    "GateVerdict",
    "LeaseHeld",
    "LeaseLost",
    "ObjectOutcome",
    "PurgeResult",
    "RestorePlan",
    "RestoreResult",
    "RunLayout",
    "RunState",
    "StageFailure",
    "export_runs",
    "export_status",
    "plan_restore",
    "purge_patient",
    "purge_request",
    "request_restores",
    "run_export",
    "void_request_runs",
]
