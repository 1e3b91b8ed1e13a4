"""Where an export run failed: the stage, the batch and a PHI-free reason.

    LakehouseError
    └── ExportStageError   a stage of a run failed; ``failure`` is recorded in the run state
        └── GateFailed     the quality gate withheld the commit; ``report_key`` names the report

Stages, in run order: ``read``, ``deidentify``, ``flatten``, ``write`` (in a worker,
one batch at a time: archive reads, de-identification, rows, staged files), ``execute``
(the engine running the workers), ``gate``, ``publish``, ``commit``; ``resume`` when a
paused run's plan became void, ``run`` for an interruption outside any stage.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from lakehouse.errors import LakehouseError, StorageError


@dataclass(frozen=True)
class StageFailure:
    """A run's failure as its state records it (``batch`` is None for run-wide stages)."""

    stage: str
    batch: str | None
    reason: str

    def describe(self) -> str:
        where = f"stage {self.stage}" + (f", batch {self.batch}" if self.batch else "")
        return f"{where}: {self.reason}"

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StageFailure:
        return cls(stage=data["stage"], batch=data["batch"], reason=data["reason"])


class ExportStageError(LakehouseError):
    """A stage of an export run failed; the run stays resumable unless it was the gate."""

    def __init__(self, failure: StageFailure) -> None:
        super().__init__(f"export failed at {failure.describe()}")
        self.failure = failure
        self.details = {"stage": failure.stage, "batch": failure.batch}


class GateFailed(ExportStageError):
    """The quality gate withheld the commit; ``report_key`` names the report."""

    def __init__(self, failure: StageFailure, report_key: str) -> None:
        super().__init__(failure)
        self.report_key = report_key


def reason_of(exc: BaseException) -> str:
    """A reason free of PHI: our own messages, except storage errors (they name object keys,
    and archive keys may carry source identifiers); anything else only by its type."""
    if isinstance(exc, LakehouseError) and not isinstance(exc, StorageError):
        return str(exc)
    return type(exc).__name__


@contextmanager
def stage(name: str, batch: str | None = None) -> Iterator[None]:
    """Run one step of a run; a failure inside it becomes an ExportStageError naming the step."""
    try:
        yield
    except ExportStageError:
        raise
    except Exception as exc:
        raise ExportStageError(StageFailure(name, batch, reason_of(exc))) from exc
