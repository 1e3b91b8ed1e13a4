"""The export job: an approved request becomes de-identified objects and Delta tables.

plan (governance manifest minus opt-outs and what is already exported) →
execute batches (local process pool or Spark) → quality gate → publish objects
→ commit tables exactly once (Delta application transactions) → audit.
"""

from lakehouse.export.commit import GateFailed
from lakehouse.export.purge import PurgeResult, purge_patient, purge_request
from lakehouse.export.run import ExportOutcome, export_status, run_export
from lakehouse.export.state import RunState, list_runs

__all__ = [
    "ExportOutcome",
    "GateFailed",
    "PurgeResult",
    "RunState",
    "export_status",
    "list_runs",
    "purge_patient",
    "purge_request",
    "run_export",
]
