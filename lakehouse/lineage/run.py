"""One observed run of a job: its OpenLineage run id, its job's name, and the events it sends."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from openlineage.client.event_v2 import Job, Run, RunEvent, RunState
from openlineage.client.facet_v2 import error_message_run, job_type_job
from openlineage.client.uuid import generate_new_uuid

from lakehouse.config import Settings
from lakehouse.errors import LakehouseError
from lakehouse.lineage.facets import PRODUCER
from lakehouse.lineage.jobs import JOBS, Described, JobKind
from lakehouse.lineage.transport import Emitter

log = logging.getLogger(__name__)


class ObservedRun:
    """One run of a job: its id, its job's name, and the events it sends."""

    def __init__(self, emitter: Emitter, kind: JobKind, settings: Settings, arguments: Mapping[str, Any]) -> None:
        self.emitter = emitter
        self.kind = kind
        self.settings = settings
        self.arguments = arguments
        self.run_id = str(generate_new_uuid())
        self.job_name = kind.kind
        self.inputs: Described = Described()

    @classmethod
    def open(cls, kind: str, settings: Settings, arguments: Mapping[str, Any]) -> ObservedRun:
        return cls(Emitter.of(settings), JOBS[kind], settings, arguments)

    def start(self) -> None:
        try:
            self.job_name, self.inputs = self.kind.start(self.settings, self.arguments)
        except Exception as exc:  # noqa: BLE001  (lineage never fails a job)
            _describe_failed(self.kind, "START", exc)
        self._send(RunState.START, self.inputs)

    def complete(self, result: Any) -> None:
        try:
            described = self.kind.complete(self.settings, self.arguments, result)
        except Exception as exc:  # noqa: BLE001  (lineage never fails a job)
            _describe_failed(self.kind, "COMPLETE", exc)
            described = Described()
        self._send(RunState.COMPLETE, Described(
            inputs=described.inputs or self.inputs.inputs, outputs=described.outputs, run_facets=described.run_facets,
        ))

    def fail(self, exc: BaseException) -> None:
        message = type(exc).__name__
        if self.kind.phi_free_errors and isinstance(exc, LakehouseError):
            message = f"{message}: {exc}"
        error = error_message_run.ErrorMessageRunFacet(message=message, programmingLanguage="python")
        self._send(RunState.FAIL, Described(inputs=self.inputs.inputs, run_facets={"errorMessage": error}))

    def _send(self, state: RunState, described: Described) -> None:
        try:
            event = RunEvent(
                eventType=state,
                eventTime=datetime.now(UTC).isoformat(),
                run=Run(runId=self.run_id, facets=dict(described.run_facets)),
                job=Job(
                    namespace=self.settings.lineage.namespace,
                    name=self.job_name,
                    facets={"jobType": job_type_job.JobTypeJobFacet(
                        processingType="BATCH", integration="LAKEHOUSE", jobType=self.kind.kind.upper(),
                    )},
                ),
                inputs=described.inputs,
                outputs=described.outputs,
                producer=PRODUCER,
            )
        except Exception as exc:  # noqa: BLE001  (lineage never fails a job)
            _describe_failed(self.kind, state.value, exc)
            return
        self.emitter.emit(event)


def _describe_failed(kind: JobKind, event: str, exc: Exception) -> None:
    log.warning("lineage: could not describe the %s event of a %s run (%s); sent with less",
                event, kind.kind, type(exc).__name__)
