"""Catalog-sync throughput against a bare pydicom loop, and bytes read per object over S3.

Run by hand (not collected by pytest):

    .venv/bin/python tests/benchmarks/bench_catalog.py             # 2000 objects of ~0.5 MB
    .venv/bin/python tests/benchmarks/bench_catalog.py --n 4000 --repeat 3 --s3-n 0  # issue 14
    .venv/bin/python tests/benchmarks/bench_catalog.py --n 50      # smoke run

Builds a local archive of N synthetic 512x512 CT slices (~0.5 MB each), then in
the same run times (a) ``sync_catalog`` into a fresh catalog and (b) a bare
single-process ``pydicom.dcmread(stop_before_pixels=True)`` loop over the same
files, after one warm-up pass so both read from the page cache; the archive
throttle's caps are lifted for the timed syncs (they would measure the cap).

Whole process (what a user waits for): ``lakehouse catalog sync`` run as its own process
(CLI start-up, imports, listing, header reads, Delta commits, the audit event) into a fresh
restricted zone, against a bare header loop script started as its own process (import
pydicom, list the folder, ``dcmread(stop_before_pixels=True)`` each file); the two alternate,
best of ``--repeat`` each. Then uploads ``--s3-n`` of the objects to a local moto S3 server and
reports the median bytes read per object by a sync over HTTP. Prints a table and one JSON line.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")

from pydicom import dcmread

from lakehouse import lake
from lakehouse.catalog import sync_catalog
from lakehouse.config import init_root, load_settings
from lakehouse.synth import generate_archive

CT_SLICES_PER_PATIENT = 50
FIELDS = [
    "SOPClassUID",
    "SOPInstanceUID",
    "StudyInstanceUID",
    "SeriesInstanceUID",
    "PatientID",
    "PatientName",
    "PatientBirthDate",
    "PatientSex",
    "StudyDate",
    "StudyTime",
    "AccessionNumber",
    "Modality",
    "BodyPartExamined",
    "StudyDescription",
    "SeriesDescription",
    "Manufacturer",
    "ManufacturerModelName",
    "Rows",
    "Columns",
    "NumberOfFrames",
    "BurnedInAnnotation",
    "ImageType",
]


def build_corpus(archive: Path, n: int, seed: int) -> list[Path]:
    """N CT slices of 512x512 (the synthetic archive's other, small objects are skipped)."""
    paths: list[Path] = []
    patients = math.ceil(n / CT_SLICES_PER_PATIENT)
    for key, data in generate_archive(
        patients=patients, seed=seed, ct_size=512, ct_slices=CT_SLICES_PER_PATIENT
    ):
        if len(data) < 400_000:
            continue
        path = archive.joinpath(*key.split("/"))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        paths.append(path)
        if len(paths) == n:
            break
    return paths


def bare_loop(paths: list[Path], with_fields: bool) -> float:
    started = time.perf_counter()
    for path in paths:
        ds = dcmread(path, stop_before_pixels=True)
        if with_fields:
            [ds.get(keyword) for keyword in FIELDS]
        else:
            _ = ds.SOPInstanceUID
    return time.perf_counter() - started


# The archive throttle's caps (200 requests/s by default) would measure the cap, not the sync.
UNCAPPED = {"LAKEHOUSE_THROTTLE_REQUESTS_PER_SECOND": "0", "LAKEHOUSE_THROTTLE_BYTES_PER_SECOND": "0"}


def timed_sync(root: Path, run: int) -> tuple[float, dict[str, object]]:
    shutil.rmtree(root / f"restricted-{run}", ignore_errors=True)  # a first sync, every time
    env = {**UNCAPPED, "LAKEHOUSE_RESTRICTED_URI": f"restricted-{run}"}
    settings = load_settings(root / "lakehouse.toml", env=env)
    started = time.perf_counter()
    result = sync_catalog(settings)
    return time.perf_counter() - started, result.to_dict()


BARE_SCRIPT = """
import sys
from pathlib import Path
from pydicom import dcmread
for path in sorted(Path(sys.argv[1]).rglob("*.dcm")):
    ds = dcmread(path, stop_before_pixels=True)
    _ = ds.SOPInstanceUID
"""


def _cli() -> list[str]:
    """The ``lakehouse`` console script beside this interpreter (as a user runs it)."""
    script = Path(sys.executable).with_name("lakehouse")
    return [str(script)] if script.exists() else [sys.executable, "-m", "lakehouse"]


def _timed_process(command: list[str], cwd: Path, env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, cwd=cwd, env={**os.environ, **env}, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def whole_process(root: Path, archive: Path, repeat: int) -> dict[str, object]:
    """Best-of-``repeat`` wall time of a CLI sync (fresh catalog) and of a bare loop, alternating."""
    cli, bare = [], []
    for run in range(repeat):
        zone = f"restricted-cli-{run}"
        shutil.rmtree(root / zone, ignore_errors=True)
        env = {**UNCAPPED, "LAKEHOUSE_NO_PROGRESS": "1", "LAKEHOUSE_RESTRICTED_URI": zone}
        cli.append(_timed_process([*_cli(), "catalog", "sync"], root, env))
        bare.append(_timed_process([sys.executable, "-c", BARE_SCRIPT, str(archive)], root, {}))
        shutil.rmtree(root / zone, ignore_errors=True)
    return {
        "process_cli_sync_seconds": round(min(cli), 3),
        "process_bare_loop_seconds": round(min(bare), 3),
        "process_ratio_vs_bare": round(min(bare) / min(cli), 2),
        "process_cli_sync_runs": [round(s, 3) for s in cli],
        "process_bare_loop_runs": [round(s, 3) for s in bare],
        "loadavg": Path("/proc/loadavg").read_text().split()[:3] if Path("/proc/loadavg").exists() else None,
    }


def s3_bytes_per_object(paths: list[Path], archive: Path, work: Path) -> dict[str, object]:
    import logging

    import boto3
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # the server logs every request
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
        client.create_bucket(Bucket="bench-archive")
        for path in paths:
            client.put_object(
                Bucket="bench-archive",
                Key=f"a/{path.relative_to(archive).as_posix()}",
                Body=path.read_bytes(),
            )
        root = work / "s3root"
        shutil.rmtree(root, ignore_errors=True)
        init_root(root, "s3://bench-archive/a")
        env = {
            **UNCAPPED,
            "LAKEHOUSE_S3_ENDPOINT_URL": endpoint,
            "LAKEHOUSE_S3_ACCESS_KEY_ID": "bench",
            "LAKEHOUSE_S3_SECRET_ACCESS_KEY": "bench",
        }
        settings = load_settings(root / "lakehouse.toml", env=env)
        result = sync_catalog(settings)
        per_object = lake.table(settings, "catalog").read(columns=["header_bytes_read", "size"]).to_pylist()
    finally:
        server.stop()
    return {
        "s3_objects": len(per_object),
        "s3_median_bytes_read_per_object": statistics.median(r["header_bytes_read"] for r in per_object),
        "s3_median_object_size": statistics.median(r["size"] for r in per_object),
        "s3_sync_seconds": result.seconds,
        "s3_objects_per_second": round(len(per_object) / max(result.seconds, 1e-9), 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=2000, help="objects in the local archive (default 2000)")
    parser.add_argument("--s3-n", type=int, default=200, help="objects uploaded to moto S3 (0 skips S3)")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs of each side; the best counts")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", type=Path, help="keep the corpus here (default: a temporary folder)")
    parser.add_argument("--process-only", action="store_true", help="time only the whole-process comparison")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="bench-catalog-") as tmp:
        work = args.workdir or Path(tmp)
        root = work / "root"
        init_root(root)
        archive = root / "archive"
        paths = sorted(archive.rglob("*.dcm")) if args.workdir else []
        if len(paths) != args.n:
            paths = build_corpus(archive, args.n, args.seed)
        corpus_bytes = sum(p.stat().st_size for p in paths)
        bare_loop(paths, with_fields=False)  # warm-up: both sides read from the page cache
        process = whole_process(root, archive, args.repeat)
        if args.process_only:
            _print({"objects": len(paths), "cpus": os.cpu_count(), **process})
            return 0

        sync_runs = [timed_sync(root, run) for run in range(args.repeat)]
        sync_seconds = min(s for s, _ in sync_runs)
        bare_seconds = min(bare_loop(paths, with_fields=False) for _ in range(args.repeat))
        fields_seconds = min(bare_loop(paths, with_fields=True) for _ in range(args.repeat))
        summary = sync_runs[0][1]
        figures: dict[str, object] = {
            "objects": len(paths),
            "median_object_bytes": statistics.median(p.stat().st_size for p in paths),
            "corpus_bytes": corpus_bytes,
            "cpus": os.cpu_count(),
            "sync_objects_per_second": round(len(paths) / sync_seconds, 1),
            "bare_dcmread_objects_per_second": round(len(paths) / bare_seconds, 1),
            "bare_dcmread_with_fields_objects_per_second": round(len(paths) / fields_seconds, 1),
            "ratio_vs_bare": round(bare_seconds / sync_seconds, 2),
            "ratio_vs_bare_with_fields": round(fields_seconds / sync_seconds, 2),
            "sync_bytes_read": summary["bytes_read"],
            "sync_failed": summary["failed"],
            **process,
        }
        if args.s3_n:
            figures.update(s3_bytes_per_object(paths[: args.s3_n], archive, work))

    _print(figures)
    return 0


def _print(figures: dict[str, object]) -> None:
    width = max(map(len, figures))
    print(f"{'figure':<{width}}  value")
    for name, value in figures.items():
        print(f"{name:<{width}}  {value}")
    print(json.dumps(figures, sort_keys=True))


if __name__ == "__main__":
    sys.exit(main())
