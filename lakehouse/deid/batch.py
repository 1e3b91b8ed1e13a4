"""De-identify files and folders into an output folder (what ``lakehouse deid`` runs).

Output names are the pseudonymous SOP Instance UID; source paths and names are never echoed,
objects are numbered in the (sorted) order they were read.
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
    out_dir.mkdir(parents=True, exist_ok=True)
    for index, path in enumerate(files, start=1):
        result = deidentify(path.read_bytes(), settings)
        outcome, reason, output = result.outcome, result.reason, None
        if result.outcome == "deidentified" and result.dataset is not None and result.data is not None:
            uid = str(result.dataset.get("SOPInstanceUID", ""))
            if is_uid(uid):  # the name comes from the object (kept as is by retain-uids): checked
                output = f"{uid}.dcm"
                (out_dir / output).write_bytes(result.data)
            else:
                outcome, reason = "quarantined", "bad_uid"
        yield ObjectOutcome(index, outcome, reason, result.tag_path, output,
                            dict(result.report.get("actions", {})))


def summarize(outcomes: Iterable[ObjectOutcome]) -> dict[str, int]:
    """Counts per outcome, and per reason for quarantined objects (``quarantined:<reason>``)."""
    counts: Counter[str] = Counter()
    for o in outcomes:
        counts[o.outcome] += 1
        if o.reason:
            counts[f"quarantined:{o.reason}"] += 1
    return dict(sorted(counts.items()))
