"""Burned-in text benchmark, run by hand (not part of the test suite).

Every burned-in-risk object of the synthetic archive (``lakehouse.synth``), pydicom's and
pydicom-data's test files and the deid-data ultrasounds (cines unzipped) goes through
``deidentify`` with all cleaning options and Clean Pixel Data. Per corpus it reports objects,
published cleanly, quarantined by reason (and pixel code), and the OCR cost: detection passes,
frames detected, seconds per frame and per pass. Each published object's frames are then read
by OCR once more (recognition included) and any letter or digit counts as text left.

    .venv/bin/python tests/benchmarks/bench_pixels.py                 # all corpora
    .venv/bin/python tests/benchmarks/bench_pixels.py --corpus synthetic --json pixels.json
"""

from __future__ import annotations

import argparse
import io
import json
import re
import sys
import time
import warnings
import zipfile
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pydicom

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "deid"))

from corpora import DATA_STORE, DEID_DATA, PYDICOM_FILES, files_under

from lakehouse.deid import DeidSettings, deidentify, ocr, parse_options
from lakehouse.deid.pixels import burned_in_risk
from lakehouse.synth.archive import generate_archive

SETTINGS = DeidSettings(
    project="bench",
    key=b"benchmark-key-not-a-secret-0000000",
    options=parse_options(
        ["clean-descriptors", "clean-structured-content", "clean-graphics", "clean-pixel-data"]
    ),
)
CORPORA = ("synthetic", "pydicom", "pydicom-data", "deid-data")


class DetectionClock:
    """Counts and times every text-detection call the engine makes (frames × passes)."""

    def __init__(self) -> None:
        self.calls, self.seconds = 0, 0.0
        self._detect = ocr.detect_text

    def __call__(self, image: np.ndarray) -> list[tuple[int, int, int, int]]:
        started = time.perf_counter()
        try:
            return self._detect(image)
        finally:
            self.calls += 1
            self.seconds += time.perf_counter() - started


def sources(corpus: str, patients: int) -> Iterator[tuple[str, bytes]]:
    if corpus == "synthetic":
        yield from generate_archive(patients=patients, seed=1)
        return
    folder = {"pydicom": PYDICOM_FILES, "pydicom-data": DATA_STORE, "deid-data": DEID_DATA}[corpus]
    for path in files_under(folder):
        if path.suffix == ".zip":
            with zipfile.ZipFile(path) as archive:
                for name in archive.namelist():
                    if name.endswith(".dcm"):
                        yield f"{path.name}/{name}", archive.read(name)
        else:
            yield path.name, path.read_bytes()


def _risky(data: bytes) -> int | None:
    """Frames of a burned-in-risk object with SOP UIDs, else None."""
    try:
        ds = pydicom.dcmread(io.BytesIO(data), force=True, defer_size=1024)
        if "SOPInstanceUID" not in ds or not burned_in_risk(ds):
            return None
        return int(ds.get("NumberOfFrames", 1) or 1)
    except Exception:  # noqa: BLE001 - unreadable files are not this benchmark's subject
        return None


def _text_left(data: bytes) -> int:
    out = pydicom.dcmread(io.BytesIO(data))
    frames = out.pixel_array.reshape(int(out.get("NumberOfFrames", 1) or 1), out.Rows, out.Columns, -1)
    return sum(any(re.search(r"[0-9A-Za-z]", t) for t in ocr.read_text(f)) for f in frames)


def run(corpus: str, patients: int, clock: DetectionClock) -> dict[str, Any]:
    outcomes: Counter[str] = Counter()
    frames_risky = frames_published = left = 0
    calls, seconds = clock.calls, clock.seconds
    started = time.perf_counter()
    for _, data in sources(corpus, patients):
        frames = _risky(data)
        if frames is None:
            continue
        frames_risky += frames
        result = deidentify(data, SETTINGS)
        if result.outcome == "deidentified" and result.data is not None:
            outcomes["published"] += 1
            frames_published += frames
            left += _text_left(result.data)
        else:
            code = result.report.get("pixel_error")
            outcomes[f"{result.reason}:{code}" if code else str(result.reason)] += 1
    objects = sum(outcomes.values())
    passes = clock.calls - calls
    return {
        "objects": objects,
        "published": outcomes["published"],
        "published_fraction": round(outcomes["published"] / objects, 3) if objects else None,
        "outcomes": dict(sorted(outcomes.items())),
        "frames": frames_risky,
        "frames_with_text_left": left,
        "detection_calls": passes,
        "detection_seconds_per_frame_call": round((clock.seconds - seconds) / passes, 3) if passes else None,
        "detection_calls_per_published_frame": round(passes / frames_published, 2)
        if frames_published
        else None,
        "seconds": round(time.perf_counter() - started, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", action="append", choices=CORPORA, help="default: all")
    parser.add_argument("--patients", type=int, default=4, help="synthetic archive size")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    clock = DetectionClock()
    ocr.detect_text = clock  # type: ignore[assignment]  # the engine calls it through the module
    figures: dict[str, Any] = defaultdict(dict)
    for corpus in args.corpus or CORPORA:
        figures[corpus] = run(corpus, args.patients, clock)
        print(corpus, json.dumps(figures[corpus]), flush=True)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
