"""De-identify files and folders into an output folder (what ``lakehouse deid`` runs).

Output names are the pseudonymous SOP Instance UID; source paths and names are never echoed,
objects are numbered in the (sorted) order they were read. Every object ends de-identified or
quarantined with a reason; none stops the run.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from lakehouse.deid.engine import DeidSettings, deidentify
from lakehouse.dicom.uid import is_uid
from lakehouse.errors import DeidError


@dataclass(frozen=True)
class ObjectOutcome:
    index: int
    outcome: str
    reason: str | None
    tag_path: str | None
    output: str | None
    actions: dict[str, int]
    error: str | None = None  # the exception type of a processing_error (never its text)

    def to_dict(self) -> dict[str, object]:
        return dict(self.__dict__)

    def line(self) -> str:
        if self.outcome == "deidentified":
            return f"#{self.index} deidentified -> {self.output}"
        where = f" at {self.tag_path}" if self.tag_path else ""
        return f"#{self.index} quarantined: {self.reason}{where}"


def source_files(paths: Iterable[Path]) -> list[Path]:
    """Every file under the given files and folders, sorted; a missing path is refused."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files += sorted(p for p in path.rglob("*") if p.is_file())
        elif path.is_file():
            files.append(path)
        else:
            raise DeidError(f"input #{len(files) + 1} is neither a file nor a folder")
    return files


def deidentify_files(files: list[Path], out_dir: Path, settings: DeidSettings) -> Iterator[ObjectOutcome]:
    """De-identify each file into ``out_dir``; one failing object never stops the others.

    Nothing is overwritten: an output name this run already wrote, or a file already there
    with other bytes, quarantines the object as ``duplicate_output`` (two sources with one
    SOP Instance UID; the first one written stays). A file already there with the same
    bytes is the same object de-identified again (the output is deterministic): counted as
    de-identified, not rewritten."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written: set[str] = set()
    for index, path in enumerate(files, start=1):
        try:
            yield _one(index, path, out_dir, settings, written)
        except Exception as exc:  # noqa: BLE001 - an unreadable file or a failing write: the run goes on
            yield ObjectOutcome(index, "quarantined", "processing_error", None, None, {}, type(exc).__name__)


def _one(index: int, path: Path, out_dir: Path, settings: DeidSettings, written: set[str]) -> ObjectOutcome:
    result = deidentify(path.read_bytes(), settings)
    actions = dict(result.report.get("actions", {}))
    error = result.report.get("error")
    if result.outcome != "deidentified" or result.dataset is None or result.data is None:
        return ObjectOutcome(index, "quarantined", result.reason, result.tag_path, None, actions, error)
    uid = str(result.dataset.get("SOPInstanceUID", ""))
    if not is_uid(uid):  # the name comes from the object (kept as is by retain-uids): checked
        return ObjectOutcome(index, "quarantined", "bad_uid", None, None, actions)
    output = f"{uid}.dcm"
    if output in written or not _write_new(out_dir / output, result.data):
        return ObjectOutcome(index, "quarantined", "duplicate_output", None, None, actions)
    written.add(output)
    return ObjectOutcome(index, "deidentified", None, None, output, actions)


def _write_new(target: Path, data: bytes) -> bool:
    """Create ``target`` with ``data``; False when another file is already there (kept as it
    is), True when it is there with these very bytes."""
    try:
        fh = target.open("xb")
    except FileExistsError:
        return target.read_bytes() == data
    try:
        with fh:
            fh.write(data)
    except BaseException:
        target.unlink(missing_ok=True)  # no partial file to be taken for an output later
        raise
    return True


def summarize(outcomes: Iterable[ObjectOutcome]) -> dict[str, int]:
    """Counts per outcome, and per reason for quarantined objects (``quarantined:<reason>``)."""
    counts: Counter[str] = Counter()
    for o in outcomes:
        counts[o.outcome] += 1
        if o.reason:
            counts[f"quarantined:{o.reason}"] += 1
    return dict(sorted(counts.items()))
