"""The one exception tree of lakehouse.

    LakehouseError                 base; its message is one line, free of PHI
    ├── ConfigError                bad or missing settings
    ├── StorageError               object-store failures
    │   ├── TransientStorageError  worth retrying (5xx, timeouts, throttling)
    │   └── PermanentStorageError  not worth retrying (403, 404, bad bucket)
    │       ├── ObjectNotFound
    │       └── ObjectArchived     in an archive storage tier: no GET until a restore
    ├── DicomParseError            an object is not (readable) DICOM; carries a reason code
    ├── Refused                    a governed action is not allowed (role, state, policy)
    │   └── LeaseHeld              another process writes the project now (lakehouse.export.errors)
    ├── InvalidProjectName         a project name outside the one rule (also a ValueError)
    ├── LakeError                  Delta table problems
    ├── ExportStageError           an export stage failed; names stage and batch (lakehouse.export.errors)
    │   └── GateFailed             the quality gate withheld the commit
    ├── LeaseLost                  this process's project lease passed to another; it stopped writing
    └── DeidError                  de-identification setup (profile data, options, keys)
        └── InvalidDeidOption      unknown, conflicting or refused option (also a ValueError)

The CLI turns any of these into a one-line message and a non-zero exit code.
Messages must never include identifying values: name keys, counts, codes, never
header values.
"""

from __future__ import annotations

from typing import Any


class LakehouseError(Exception):
    """Base of every error lakehouse raises on purpose. ``details`` (counts, ids, never PHI) goes
    into the CLI's ``--json`` error object."""

    exit_code = 1
    details: dict[str, Any] | None = None


class ConfigError(LakehouseError):
    exit_code = 2


class StorageError(LakehouseError):
    pass


class TransientStorageError(StorageError):
    pass


class PermanentStorageError(StorageError):
    pass


class ObjectNotFound(PermanentStorageError):
    pass


class ObjectArchived(PermanentStorageError):
    """The object sits in an archive storage tier (S3 ``InvalidObjectState``): it cannot be
    read until a restore makes a temporary copy. A state to wait in, not a failure."""


class DicomParseError(LakehouseError):
    """Raised when bytes cannot be parsed as DICOM; `code` is a stable reason code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.reason = message


class Refused(LakehouseError):
    """A governed action was refused; the message says why."""

    exit_code = 3


class InvalidProjectName(LakehouseError, ValueError):
    """A project name outside the rule of ``lakehouse.config.project.ProjectName``."""

    exit_code = 2


class LakeError(LakehouseError):
    pass


class PixelCleaningError(LakehouseError):
    """Burned-in text could not be removed with certainty; `code` is a stable reason code
    (no_pixel_data, undecodable, unsupported_transfer_syntax, unsupported_pixel_format,
    encapsulated_document, ocr_unavailable, ocr_failed, ocr_text_found)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.reason = message


class DeidError(LakehouseError):
    """De-identification could not be set up (profile data, options, keys)."""

    exit_code = 2


class InvalidDeidOption(DeidError, ValueError):
    """An unknown, conflicting or refused de-identification option name."""


class AuditChainBroken(LakehouseError):
    """`audit verify` found a broken link; the message names it (index, event id, problem)."""

    exit_code = 4
