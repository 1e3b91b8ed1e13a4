"""What the export's steps hand each other: one object's outcome, a batch's summary,
a batch's gate verdict.

``BatchSummary`` and ``GateVerdict`` are stored in the run folder (``RunLayout.marker``,
``RunLayout.verdict``) and read back by a resumed run, so each has ``to_json`` and
``from_json``. Fields that hold source identifiers never show in a repr.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from lakehouse.export.layout import batch_name
from lakehouse.flatten import FlatRows

if TYPE_CHECKING:
    from lakehouse.quality import GateResult  # the driver's; workers never import quality


@dataclass(frozen=True)
class ObjectOutcome:
    """One planned object after the worker: exported (rows, lineage, the source identifiers
    it carried) or quarantined (a quarantine row with the reason). Kept in memory only."""

    bytes_read: int = 0
    flat: FlatRows | None = field(default=None, repr=False)
    lineage: dict[str, Any] | None = field(default=None, repr=False)
    forbidden: frozenset[str] = field(default=frozenset(), repr=False)
    quarantine: dict[str, Any] | None = field(default=None, repr=False)
    waiting: str | None = None  # not readable now (a reason of ``BatchWaiting``): neither of the above

    @classmethod
    def exported(
        cls, flat: FlatRows, lineage: dict[str, Any], forbidden: Iterable[str], bytes_read: int
    ) -> ObjectOutcome:
        return cls(bytes_read=bytes_read, flat=flat, lineage=lineage, forbidden=frozenset(forbidden))

    @classmethod
    def quarantined(cls, row: dict[str, Any], bytes_read: int = 0) -> ObjectOutcome:
        return cls(bytes_read=bytes_read, quarantine=row)

    @classmethod
    def unreadable(cls, reason: str) -> ObjectOutcome:
        return cls(waiting=reason)

    @property
    def bytes_written(self) -> int:
        return int(self.lineage["output_size"]) if self.lineage else 0


@dataclass(frozen=True)
class BatchSummary:
    """A staged batch: its counts and the source identifiers the gate must not find.
    Stored last, as the batch marker: a batch with a summary is done."""

    batch: int
    exported: int = 0
    quarantined: dict[str, int] = field(default_factory=dict)  # reason → objects
    bytes_read: int = 0
    bytes_written: int = 0
    forbidden: tuple[str, ...] = field(default=(), repr=False)

    @property
    def name(self) -> str:
        return batch_name(self.batch)

    @classmethod
    def of(cls, batch: int, outcomes: Iterable[ObjectOutcome]) -> BatchSummary:
        exported = bytes_read = bytes_written = 0
        quarantined: Counter[str] = Counter()
        forbidden: set[str] = set()
        for outcome in outcomes:
            bytes_read += outcome.bytes_read
            if outcome.quarantine is not None:
                quarantined[outcome.quarantine["reason"]] += 1
            else:
                exported += 1
                bytes_written += outcome.bytes_written
                forbidden |= outcome.forbidden
        return cls(
            batch=batch,
            exported=exported,
            quarantined=dict(sorted(quarantined.items())),
            bytes_read=bytes_read,
            bytes_written=bytes_written,
            forbidden=tuple(sorted(forbidden)),
        )

    def to_json(self) -> bytes:
        return json.dumps(asdict(self)).encode()

    @classmethod
    def from_json(cls, data: bytes) -> BatchSummary:
        fields = json.loads(data)
        return cls(**{**fields, "forbidden": tuple(fields["forbidden"])})


@dataclass(frozen=True)
class BatchWaiting:
    """A batch with objects no GET can read yet (archived and not restored, or refused with
    ``InvalidObjectState``): none of its objects was read (or published), no marker is written,
    and the run waits for restores; a later attempt redoes the batch. ``waiting`` counts the
    unreadable objects per reason (``storage.tiers.WAITING_REASONS`` or ``invalid_object_state``)."""

    batch: int
    waiting: dict[str, int]

    @property
    def name(self) -> str:
        return batch_name(self.batch)


@dataclass(frozen=True)
class GateVerdict:
    """The quality gate's verdict on one staged batch; ``report`` holds names and counts only."""

    batch: int
    passed: bool
    failures: tuple[str, ...] = ()
    report: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def name(self) -> str:
        return batch_name(self.batch)

    @classmethod
    def of(cls, batch: int, result: GateResult) -> GateVerdict:
        return cls(batch=batch, passed=result.passed, failures=tuple(result.failures), report=result.report)

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), default=str).encode()

    @classmethod
    def from_json(cls, data: bytes) -> GateVerdict:
        fields = json.loads(data)
        return cls(**{**fields, "failures": tuple(fields["failures"])})
