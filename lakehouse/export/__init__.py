"""The export job: an approved request becomes de-identified objects and Delta tables.

plan (governance manifest minus opt-outs and what is already exported) →
execute batches (local process pool or Spark) → quality gate → publish objects
→ commit tables exactly once (Delta application transactions) → audit.

Modules, in the order a run uses them: ``plan``, ``context`` (what the steps share),
``worker`` and ``engines`` (batches), ``gate``, ``commit``; ``layout`` names every key
of a run, ``results`` the typed hand-offs between steps, ``errors`` the failed stage.
"""

from lakehouse.export.errors import ExportStageError, GateFailed, StageFailure
from lakehouse.export.layout import RunLayout
from lakehouse.export.purge import PurgeResult, purge_patient, purge_request
from lakehouse.export.results import BatchSummary, GateVerdict, ObjectOutcome
from lakehouse.export.run import ExportOutcome, export_runs, export_status, run_export
from lakehouse.export.state import RunState

__all__ = [
    "BatchSummary",
    "ExportOutcome",
    "ExportStageError",
    "GateFailed",
    "GateVerdict",
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
]
