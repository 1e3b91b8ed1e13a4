"""Where an export run failed: the stage, the batch and a PHI-free reason.

    LakehouseError
    ├── ExportStageError   a stage of a run failed; ``failure`` is recorded in the run state
    │   └── GateFailed     the quality gate withheld the commit; ``report_key`` names the report
    ├── Refused
    │   └── LeaseHeld      another live process holds the project's lease (names it, and since when)
    └── LeaseLost          this process's lease ran out or was taken over: it stopped writing

Stages, in run order: ``read``, ``deidentify``, ``flatten``, ``write`` (in a worker,
one batch at a time: archive reads, de-identification, rows, staged files), ``execute``
(the engine running the workers), ``gate``, ``publish``, ``commit``; ``run`` for an
interruption outside any stage. A run whose request was revoked or expired meanwhile ends
``revoked`` or ``expired`` (``governance`` as its stage) and publishes nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from lakehouse.errors import LakehouseError, Refused, StorageError


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


class LeaseHeld(Refused):
    """The project's lease is held by a live process: a second writer is refused."""

    def __init__(self, project: str, holder: str, since: str) -> None:
        super().__init__(f"project {project} is busy: {holder} holds its lease since {since}")
        self.details = {"project": project, "holder": holder, "since": since}


class LeaseLost(LakehouseError):
    """The lease ran out (this process stalled past its term) or another process took it over.
    The holder stops at once without writing: the run's state belongs to the new holder."""

    def __init__(self, project: str) -> None:
        super().__init__(f"lost the lease on project {project}: another process may resume the work; stopped")
        self.details = {"project": project}


def reason_of(exc: BaseException) -> str:
    """A reason free of PHI: our own messages, except storage errors (they name object keys,
    and archive keys may carry source identifiers); anything else only by its type."""
    if isinstance(exc, LakehouseError) and not isinstance(exc, StorageError):
        return str(exc)
    return type(exc).__name__


@contextmanager
def stage(name: str, batch: str | None = None) -> Iterator[None]:
    """Run one step of a run; a failure inside it becomes an ExportStageError naming the step
    (a lost lease stays LeaseLost: the run must stop without recording anything)."""
    try:
        yield
    except (ExportStageError, LeaseLost):
        raise
    except Exception as exc:
        raise ExportStageError(StageFailure(name, batch, reason_of(exc))) from exc
