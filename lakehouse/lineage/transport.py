"""The configured OpenLineage transport (``[lineage]``), built once per job run.

Events are sent by openlineage-python's own transports, called directly rather than through
``OpenLineageClient`` (which would also read ``openlineage.yml`` and ``OPENLINEAGE_*`` variables
and add environment facets): lineage goes where ``lakehouse.toml`` says, as built here, and
nowhere else. Sending never fails a job: an error is logged as a warning (naming the
transport and the exception type) and the job goes on.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from openlineage.client.event_v2 import RunEvent
from openlineage.client.transport import Transport
from openlineage.client.transport.file import FileConfig, FileTransport
from openlineage.client.transport.http import ApiKeyTokenProvider, HttpConfig, HttpTransport

from lakehouse.config import LineageSettings, Settings
from lakehouse.errors import ConfigError

log = logging.getLogger(__name__)

# One quick retry: a lineage server that is down must not hold a job up for long.
_HTTP_RETRY = {"total": 1, "backoff_factor": 0.2, "status_forcelist": [500, 502, 503, 504]}


class Emitter:
    """Sends run events to the configured transport; never raises."""

    def __init__(self, settings: LineageSettings, transport: Transport | None) -> None:
        self.settings = settings
        self._transport = transport

    @classmethod
    def of(cls, settings: Settings) -> Emitter:
        lineage = settings.lineage
        if lineage.transport == "none":
            return cls(lineage, None)
        try:
            return cls(lineage, _transport(settings))
        except Exception as exc:  # noqa: BLE001  (a broken transport setting must not stop the job)
            log.warning("lineage: %s transport unusable (%s); no events will be sent", lineage.transport,
                        type(exc).__name__)
            return cls(lineage, None)

    @property
    def enabled(self) -> bool:
        return self._transport is not None

    def emit(self, event: RunEvent) -> None:
        if self._transport is None:
            return
        try:
            self._transport.emit(event)
        except Exception as exc:  # noqa: BLE001  (lineage never fails a job)
            log.warning("lineage: could not send the %s event of job %s over %s (%s)",
                        event.eventType.value if event.eventType else "run", event.job.name,
                        self.settings.transport, type(exc).__name__)


def _transport(settings: Settings) -> Transport:
    lineage = settings.lineage
    if lineage.transport == "file":
        path = Path(lineage.file).expanduser()
        if not path.is_absolute():
            base = settings.config_path.parent if settings.config_path else Path.cwd()
            path = base / path
        path.parent.mkdir(parents=True, exist_ok=True)
        return FileTransport(FileConfig(log_file_path=str(path), append=True))
    if not lineage.url:
        raise ConfigError("[lineage] transport http needs url")
    config = HttpConfig(url=lineage.url, endpoint=lineage.endpoint, timeout=lineage.timeout_seconds, retry=_HTTP_RETRY)
    if lineage.api_key_env:
        key = os.environ.get(lineage.api_key_env)
        if not key:
            raise ConfigError(f"[lineage] api_key_env names {lineage.api_key_env}, which is not set")
        config.auth = ApiKeyTokenProvider({"apiKey": key})
    return HttpTransport(config)
