"""Annotation import benchmark, run by hand (not part of the test suite).

    .venv/bin/python tests/benchmarks/bench_annotations.py             # 20 CT series x 200 slices of 512x512
    .venv/bin/python tests/benchmarks/bench_annotations.py --small     # 4 x 40 slices of 256x256: a quick look
    .venv/bin/python tests/benchmarks/bench_annotations.py --profile import.txt   # + a py-spy run of the import
    .venv/bin/python tests/benchmarks/bench_annotations.py --json bench-annotations.json

Setup (not compared; its times are printed): a lake root with the dataset tests' roles, a
synthetic archive of ``--series`` patients (one CT series of ``--slices`` slices of ``--size``
pixels each, plus the archive's SR, KO, MR, CR, SC and US objects), exported into project
``lung-ai`` as the dataset tests do, then ``lakehouse dataset build bench --project lung-ai
--where TRUE --format nifti --user cora`` as a real process. One label map per CT NIfTI of
bench@v1 is drawn from the image itself (1 = body, HU > -500; 2 = organ, HU > 120: two segments
over every slice, as an organ model's output would be) and saved as nnU-Net names it
(``<case>.nii.gz``). Every file is read once to warm the page cache.

Timed, whole process from start to exit, peak RSS from ``wait4``, on the same files in the same run:

* lakehouse: ``lakehouse dataset annotations import bench@v1 --from MAPS --kind nifti --user leo``
  (geometry check against the series, SEG written with highdicom, identifier scan, research-zone
  put, ``annotations``/``annotation_segments`` Delta commits, audit);
* bare highdicom: one ``python`` child that, per series, loads the label map with nibabel, reads
  the series' de-identified objects from the research zone with pydicom, sorts them along the
  normal, builds ``hd.seg.Segmentation`` (BINARY, the same label values as segments) and saves
  it: no checks, no tables.

Reported: seconds per series for both and their ratio (issue 13's target: within 1.3x). The
SEGs of both sides are compared (frames, referenced SOP instances, pixels) so the ratio is
between equal outputs. ``--profile PATH`` then runs the import again under ``py-spy record``
(the import is idempotent: the same work, nothing new committed) and prints where time goes.
The machine may be shared: the 1-minute load average is printed with every figure.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

TESTS = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(TESTS), str(TESTS / "datasets")]

PROJECT = "lung-ai"
DATASET = "bench"
BODY_HU, ORGAN_HU = -500.0, 120.0
LAKEHOUSE = Path(sys.executable).parent / "lakehouse"


def load() -> float:
    return round(os.getloadavg()[0], 2)


def timed_process(argv: list[str]) -> tuple[float, float, str]:
    """Wall seconds, peak RSS (MB, from ``wait4``) and stdout of one child process."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        process = subprocess.Popen(argv, stdout=out, stderr=err)
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - started
        if status != 0:
            err.seek(0)
            raise SystemExit(f"{' '.join(argv[:4])} failed: {err.read().decode()[-3000:]}")
        out.seek(0)
        return seconds, usage.ru_maxrss / 1024, out.read().decode()


def cli(config: Path, *args: str) -> list[str]:
    return [str(LAKEHOUSE), *args, "--config", str(config)]


# --- setup: lake, dataset, label maps ---------------------------------------------------------------


def build_lake(root: Path, *, series: int, slices: int, size: int, workers: int) -> tuple[Path, dict[str, float]]:
    from datasets_testing import ROLES, export_request
    from lakehouse_testing import set_sections

    from lakehouse.config import init_root, load_settings
    from lakehouse.synth import synthesize_archive

    times = {}
    config = init_root(root)
    set_sections(config, roles=ROLES, export={"batch_size": 64, "workers": workers},
                 throttle={"requests_per_second": 0, "bytes_per_second": 0})
    started = time.perf_counter()
    synthesize_archive(root / "archive", patients=series, seed=13, ct_size=size, ct_slices=slices)
    times["synthesize_s"] = round(time.perf_counter() - started, 1)
    started = time.perf_counter()
    export_request(load_settings(config, env={}))
    times["export_s"] = round(time.perf_counter() - started, 1)
    started = time.perf_counter()
    seconds, rss, _ = timed_process(cli(config, "dataset", "build", DATASET, "--project", PROJECT, "--where", "TRUE",
                                        "--format", "nifti", "--user", "cora"))
    times["dataset_build_s"], times["dataset_build_rss_mb"] = round(seconds, 1), round(rss)
    return config, times


def draw_label_maps(root: Path, out: Path, slices: int) -> dict[str, Path]:
    """One two-label map per CT NIfTI (``slices`` deep) of bench@v1, on the image's own grid;
    returns the label map path of each series."""
    import nibabel

    from lakehouse.datasets import layout

    version = root / "datasets" / layout.version_prefix(PROJECT, DATASET, 1)
    out.mkdir(parents=True)
    maps = {}
    for sidecar_path in sorted(version.rglob("*.json")):
        sidecar = json.loads(sidecar_path.read_text())
        if not isinstance(sidecar, dict) or sidecar.get("shape", [0, 0, 0])[2:] != [slices]:
            continue
        uid = sidecar["SeriesInstanceUID"]
        image = nibabel.load(sidecar_path.with_name(f"{layout.case_id(uid)}_0000.nii.gz"))
        hu = np.asarray(image.dataobj)
        labels = np.where(hu > ORGAN_HU, 2, np.where(hu > BODY_HU, 1, 0)).astype(np.uint8)
        maps[uid] = out / f"{layout.case_id(uid)}.nii.gz"
        nibabel.save(nibabel.Nifti1Image(labels, image.affine), maps[uid])
    return maps


def research_files(config: Path, wanted: set[str]) -> dict[str, list[str]]:
    """The de-identified objects (local research-zone paths) of each wanted series."""
    from lakehouse import lake
    from lakehouse.config import load_settings

    settings = load_settings(config, env={})
    table = lake.table(settings, "instances", project=PROJECT).read(columns=["SeriesInstanceUID", "object_key"])
    files: dict[str, list[str]] = collections.defaultdict(list)
    for uid, key in zip(table["SeriesInstanceUID"].to_pylist(), table["object_key"].to_pylist(), strict=True):
        if uid in wanted:
            files[uid].append(str(config.parent / "research" / key))
    return files


def child_setup(plan: Path, *, series: int, slices: int, size: int, workers: int) -> None:
    """The setup, in a child so that the parent (which forks the timed processes) stays small:
    a forked child's peak RSS starts at its parent's. Writes the plan of the timed sides."""
    config, times = build_lake(plan.parent / "lh", series=series, slices=slices, size=size, workers=workers)
    maps = draw_label_maps(plan.parent / "lh", plan.parent / "maps", slices)
    if len(maps) != series:
        raise SystemExit(f"expected {series} CT NIfTI volumes of {slices} slices in {DATASET}@v1, found {len(maps)}")
    sources = research_files(config, set(maps))
    plan.write_text(json.dumps({
        "config": str(config), "times": times, "out": str(plan.parent / "bare"),
        "maps": {uid: str(path) for uid, path in maps.items()},
        "series": [{"label_map": str(maps[uid]), "sources": sources[uid]} for uid in sorted(maps)],
    }))


# --- the bare highdicom loop (a child process) -----------------------------------------------------------


def child_bare(plan_path: Path) -> None:
    """Per series: nibabel label map, pydicom sources sorted along the normal, hd.seg.Segmentation, save."""
    import highdicom as hd
    import nibabel
    import pydicom

    plan = json.loads(plan_path.read_text())
    category = hd.sr.CodedConcept("91723000", "SCT", "Anatomical Structure")
    concept = hd.sr.CodedConcept("85756007", "SCT", "Tissue")
    for item in plan["series"]:
        labels = np.asarray(nibabel.load(item["label_map"]).dataobj)
        sources = [pydicom.dcmread(path) for path in item["sources"]]
        normal = np.cross(*np.array(sources[0].ImageOrientationPatient, dtype=float).reshape(2, 3))
        sources.sort(key=lambda ds: float(np.dot(normal, np.array(ds.ImagePositionPatient, dtype=float))))
        numbers = [int(v) for v in np.unique(labels) if v]
        seg = hd.seg.Segmentation(
            source_images=sources,
            pixel_array=np.ascontiguousarray(labels.transpose(2, 1, 0)),  # (slice, row, column)
            segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
            segment_descriptions=[
                hd.seg.SegmentDescription(n, f"label {n}", category, concept, hd.seg.SegmentAlgorithmTypeValues.MANUAL)
                for n in numbers
            ],
            series_instance_uid=hd.UID(), series_number=9901, sop_instance_uid=hd.UID(), instance_number=1,
            manufacturer="bench", manufacturer_model_name="bare", software_versions="1", device_serial_number="1",
        )
        seg.save_as(Path(plan["out"]) / f"{Path(item['label_map']).name.split('.')[0]}.dcm", enforce_file_format=True)


# --- comparing the two sides' SEGs -----------------------------------------------------------------------


def seg_content(path: Path) -> dict[tuple[str, int], int]:
    """(referenced SOP Instance UID, segment number) -> voxels set, over every frame of a SEG."""
    import pydicom

    seg = pydicom.dcmread(path)
    pixels = seg.pixel_array.reshape(int(seg.NumberOfFrames), int(seg.Rows), int(seg.Columns))
    shared = seg.SharedFunctionalGroupsSequence[0]
    content = {}
    for frame, item in zip(pixels, seg.PerFrameFunctionalGroupsSequence, strict=True):
        source = item.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID
        identification = item.get("SegmentIdentificationSequence") or shared.SegmentIdentificationSequence
        content[(str(source), int(identification[0].ReferencedSegmentNumber))] = int(np.count_nonzero(frame))
    return content


def same_segs(root: Path, bare: Path, series: list[str]) -> bool:
    from lakehouse.datasets import layout

    for uid in series:
        ours = sorted((root / "research" / PROJECT / "annotations" / uid).glob("*.dcm"))
        if len(ours) != 1 or seg_content(ours[0]) != seg_content(bare / f"{layout.case_id(uid)}.dcm"):
            return False
    return True


# --- where the import's time goes (py-spy) ---------------------------------------------------------------


def profile_import(argv: list[str], out: Path, top: int = 25) -> list[tuple[str, float, float]]:
    """Run ``argv`` under ``py-spy record`` (raw collapsed stacks, subprocesses too) and return the
    ``top`` functions by inclusive share: (function, inclusive %, self %)."""
    py_spy = Path(sys.executable).parent / "py-spy"
    subprocess.run([str(py_spy), "record", "--rate", "50", "--subprocesses", "--format", "raw", "-o", str(out),
                    "--", *argv], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    inclusive: collections.Counter[str] = collections.Counter()
    own: collections.Counter[str] = collections.Counter()
    total = 0
    for line in out.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = [f.split(" (")[0] + " (" + f.split(" (")[-1].split(":")[0].rsplit("/", 1)[-1] + ")"
                  for f in stack.split(";") if f]
        samples = int(count)
        total += samples
        for name in set(frames):
            inclusive[name] += samples
        if frames:
            own[frames[-1]] += samples
    return [(name, round(100 * n / total, 1), round(100 * own[name] / total, 1))
            for name, n in inclusive.most_common(top)]


# --- main -----------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--small", action="store_true", help="4 series x 40 slices of 256x256")
    parser.add_argument("--series", type=int)
    parser.add_argument("--slices", type=int)
    parser.add_argument("--size", type=int)
    parser.add_argument("--workers", type=int, default=2, help="export workers of the setup")
    parser.add_argument("--profile", type=Path, help="also run the import under py-spy; raw stacks to this file")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    parser.add_argument("--child-bare", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--child-setup", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    count = args.series or (4 if args.small else 20)
    slices = args.slices or (40 if args.small else 200)
    size = args.size or (256 if args.small else 512)
    if args.child_bare:
        child_bare(args.child_bare)
        return
    if args.child_setup:
        child_setup(args.child_setup, series=count, slices=slices, size=size, workers=args.workers)
        return
    work = Path(tempfile.mkdtemp(prefix="bench-annotations-"))
    report: dict[str, Any] = {"series": count, "slices": slices, "size": size, "cpus": os.cpu_count()}
    try:
        plan = work / "plan.json"
        subprocess.run([sys.executable, __file__, "--child-setup", str(plan), "--series", str(count), "--slices",
                        str(slices), "--size", str(size), "--workers", str(args.workers)], check=True)
        setup = json.loads(plan.read_text())
        config, maps, report["setup"] = Path(setup["config"]), setup["maps"], setup["times"]
        for path in [*maps.values(), *(p for item in setup["series"] for p in item["sources"])]:
            Path(path).read_bytes()  # warm the page cache for both sides alike
        print(f"{count} series x {slices} slices of {size}x{size}; setup {report['setup']}", flush=True)
        (work / "bare").mkdir()
        importing = cli(config, "dataset", "annotations", "import", f"{DATASET}@v1", "--from", str(work / "maps"),
                        "--kind", "nifti", "--user", "leo", "--json")
        sides = {
            "bare_highdicom": [sys.executable, __file__, "--child-bare", str(plan)],
            "lakehouse": importing,
        }
        figures: dict[str, Any] = {}
        for name, argv in sides.items():
            before = load()
            seconds, rss, out = timed_process(argv)
            figures[name] = {"seconds": round(seconds, 2), "s_per_series": round(seconds / count, 3),
                             "peak_rss_mb": round(rss), "load_before": before, "load_after": load()}
            if name == "lakehouse":
                result = json.loads(out)
                figures[name]["imported"], figures[name]["refused"] = len(result["imported"]), len(result["refused"])
                if result["refused"] or len(result["imported"]) != count:
                    raise SystemExit(f"the import did not take every label map: {result['refused'][:3]}")
            print(f"{name}: {figures[name]}", flush=True)
        figures["ratio"] = round(figures["lakehouse"]["seconds"] / figures["bare_highdicom"]["seconds"], 2)
        figures["target"] = 1.3
        figures["same_segs"] = same_segs(work / "lh", work / "bare", sorted(maps))
        figures["seg_mb_per_series"] = round(
            sum(p.stat().st_size for p in (work / "bare").glob("*.dcm")) / count / 2**20, 1)
        report["import"] = figures
        print(f"ratio {figures['ratio']} (target <= 1.3), same SEGs: {figures['same_segs']}", flush=True)

        if args.profile:
            hot = profile_import(importing, args.profile)
            report["profile"] = [{"function": f, "inclusive_pct": i, "self_pct": s} for f, i, s in hot]
            print(f"py-spy (raw stacks in {args.profile}), inclusive% self% function:")
            for function, inclusive, own in hot:
                print(f"  {inclusive:5.1f} {own:5.1f}  {function}")
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(report, indent=1))
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
