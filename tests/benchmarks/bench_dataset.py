"""Dataset rendering benchmark, run by hand (not part of the test suite).

    .venv/bin/python tests/benchmarks/bench_dataset.py                # 20 series x 200 slices of 512x512 CT
    .venv/bin/python tests/benchmarks/bench_dataset.py --small        # 4 x 40 slices of 256x256: a quick look
    .venv/bin/python tests/benchmarks/bench_dataset.py --json bench-dataset.json

Synthetic CT series (a body phantom with lungs, spine and noise; 12-bit stored, HU intercept
-1024, axial, shuffled file names) are written into a temporary folder and read once to warm
the page cache. Then, on the same files in the same run:

* NIfTI, whole process: one ``python`` child that imports lakehouse, reads every object with
  pydicom and writes ``series_to_nifti``'s .nii.gz and sidecar per series (what the dataset
  build does per series, gzip level 1), against ``dcm2niix -z y -b y`` run once per series
  (pigz if on PATH, else its internal zlib; its default level 6, and its level 1 with
  ``--dcm2niix-level 1``), and a bare pydicom+numpy+nibabel loop (sort by z, stack,
  ``nibabel.save``: no checks, nibabel's default gzip level 1) as a second reference. Wall time per side from process start to exit; peak RSS from ``wait4``.
* PNG: objects/s of ``object_to_pngs`` (lung window, 8 bit) against a bare pydicom+Pillow loop
  (``pixel_array``, rescale, clip to the same window, ``Image.save``), both reading and writing
  the same files in this process, alternated over ``--rounds`` rounds; the best round counts.
  The bare loop runs at Pillow's default zlib level (6) and at ours (1), and ours at 6 too, so
  the ratio at equal settings and the effect of the level are both visible.
* Memory: our NIfTI child's peak RSS over half the series and over all of them, twice each
  (flat means nothing is kept between series).

The machine may be shared: the 1-minute load average is printed with every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2"
LUNG = (-600.0, 1500.0)  # center, width


# --- synthetic series ---------------------------------------------------------------------------


def phantom(size: int, k: int, noise: np.ndarray) -> np.ndarray:
    """Stored values (HU + 1024, 12 bit) of slice ``k``: air, body, two lungs that change with
    ``k``, a spine, and noise, so gzip and PNG compress it about as they would a real CT."""
    y, x = np.ogrid[-1 : 1 : size * 1j, -1 : 1 : size * 1j]
    hu = np.full((size, size), -1000.0, dtype=np.float32)
    hu[(x / 0.85) ** 2 + (y / 0.65) ** 2 <= 1] = 40.0
    radius = 0.22 + 0.05 * np.sin(k / 30.0)
    lungs = ((np.abs(x) - 0.35) / radius) ** 2 + (y / 0.38) ** 2 <= 1
    hu[lungs] = -850.0
    hu[(x / 0.09) ** 2 + ((y - 0.45) / 0.09) ** 2 <= 1] = 700.0
    return np.clip(hu + noise + 1024.0, 0, 4095).astype(np.uint16)


def write_series(folder: Path, series_index: int, slices: int, size: int) -> Path:
    rng = np.random.default_rng(series_index)
    noise_pool = [rng.normal(0.0, 12.0, (size, size)).astype(np.float32) for _ in range(8)]
    series_uid = generate_uid(entropy_srcs=["bench", str(series_index)])
    study_uid = generate_uid(entropy_srcs=["bench-study", str(series_index)])
    target = folder / f"series{series_index:03d}"
    target.mkdir(parents=True)
    spacing = 0.6 + 0.01 * series_index
    names = list(range(slices))
    random.Random(series_index).shuffle(names)  # file order says nothing about slice order
    for k in range(slices):
        ds = Dataset()
        ds.set_pixel_data(phantom(size, k, noise_pool[k % len(noise_pool)]), "MONOCHROME2", 12)
        ds.SOPInstanceUID = generate_uid(entropy_srcs=[series_uid, str(k)])
        ds.SeriesInstanceUID, ds.StudyInstanceUID = series_uid, study_uid
        ds.Modality, ds.InstanceNumber = "CT", k + 1
        ds.ImagePositionPatient = [f"{-size * spacing / 2:.4f}", f"{-size * spacing / 2:.4f}", f"{-300 + 1.25 * k:.4f}"]
        ds.ImageOrientationPatient = ["1", "0", "0", "0", "1", "0"]
        ds.PixelSpacing = [f"{spacing:.4f}", f"{spacing:.4f}"]
        ds.SliceThickness = "1.25"
        ds.RescaleSlope, ds.RescaleIntercept, ds.RescaleType = "1", "-1024", "HU"
        ds.file_meta = FileMetaDataset()
        ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID = CT_IMAGE
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.save_as(target / f"{names[k]:05d}.dcm", enforce_file_format=True)
    return target


def files_of(series: Path) -> list[Path]:
    return sorted(series.glob("*.dcm"))


# --- children (one process per timed NIfTI side) -------------------------------------------------


def child_nifti(out: Path, series: list[Path]) -> None:
    from lakehouse.datasets.nifti import series_to_nifti

    for folder in series:
        result = series_to_nifti([pydicom.dcmread(p) for p in files_of(folder)])
        (out / f"{folder.name}.nii.gz").write_bytes(result.image)
        (out / f"{folder.name}.json").write_text(json.dumps(result.sidecar, indent=1, sort_keys=True))


def child_bare_nifti(out: Path, series: list[Path]) -> None:
    import nibabel

    for folder in series:
        datasets = sorted((pydicom.dcmread(p) for p in files_of(folder)), key=lambda d: float(d.ImagePositionPatient[2]))
        volume = np.stack([d.pixel_array.T.astype(np.int16) - 1024 for d in datasets], axis=-1)
        dy, dx = (float(v) for v in datasets[0].PixelSpacing)
        dz = float(datasets[1].ImagePositionPatient[2]) - float(datasets[0].ImagePositionPatient[2])
        x0, y0, z0 = (float(v) for v in datasets[0].ImagePositionPatient)
        affine = np.array([[-dx, 0, 0, -x0], [0, -dy, 0, -y0], [0, 0, dz, z0], [0, 0, 0, 1]])
        nibabel.save(nibabel.Nifti1Image(volume, affine), out / f"{folder.name}.nii.gz")


CHILDREN = {"nifti": child_nifti, "bare-nifti": child_bare_nifti}


def timed_process(argv: list[str]) -> tuple[float, float]:
    """Wall seconds and peak RSS (MB) of one child process, from ``wait4``."""
    started = time.perf_counter()
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    if status != 0:
        raise SystemExit(f"{argv[0]} failed: {process.stderr.read().decode()[-2000:] if process.stderr else ''}")
    return seconds, usage.ru_maxrss / 1024


def run_child(kind: str, out: Path, series: list[Path]) -> tuple[float, float]:
    out.mkdir(parents=True, exist_ok=True)
    return timed_process([sys.executable, __file__, "--child", kind, "--out", str(out), *map(str, series)])


def run_dcm2niix(out: Path, series: list[Path], level: int) -> tuple[float, float]:
    binary = shutil.which("dcm2niix") or str(Path(sys.executable).parent / "dcm2niix")
    out.mkdir(parents=True, exist_ok=True)
    total, peak = 0.0, 0.0
    for folder in series:
        seconds, rss = timed_process(
            [binary, "-z", "y", f"-{level}", "-b", "y", "-f", folder.name, "-o", str(out), str(folder)])
        total, peak = total + seconds, max(peak, rss)
    return total, peak


def same_volume(ours: Path, reference: Path) -> bool:
    import nibabel

    a, b = (nibabel.as_closest_canonical(nibabel.load(p)) for p in (ours, reference))
    return bool(np.allclose(a.affine, b.affine, atol=1e-3) and np.array_equal(a.get_fdata(), b.get_fdata()))


# --- PNG --------------------------------------------------------------------------------------


def png_ours(files: list[Path], out: Path) -> float:
    from lakehouse.datasets.png import object_to_pngs
    from lakehouse.datasets.windows import parse_window

    window = parse_window("lung")
    started = time.perf_counter()
    for n, path in enumerate(files):
        for png in object_to_pngs(pydicom.dcmread(path), window):
            (out / f"{n}_{png.frame}.png").write_bytes(png.data)
    return time.perf_counter() - started


def png_bare(files: list[Path], out: Path, **save: Any) -> float:
    center, width = LUNG
    started = time.perf_counter()
    for n, path in enumerate(files):
        ds = pydicom.dcmread(path)
        hu = ds.pixel_array.astype(np.float32) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
        grey = np.clip((hu - (center - width / 2)) / width * 255.0, 0, 255).astype(np.uint8)
        Image.fromarray(grey).save(out / f"{n}.png", **save)
    return time.perf_counter() - started


def png_bare_level1(files: list[Path], out: Path) -> float:
    return png_bare(files, out, compress_level=1)


def png_ours_level6(files: list[Path], out: Path) -> float:
    from lakehouse.datasets import png

    chosen, png.PNG_COMPRESS_LEVEL = png.PNG_COMPRESS_LEVEL, 6
    try:
        return png_ours(files, out)
    finally:
        png.PNG_COMPRESS_LEVEL = chosen


# --- main -------------------------------------------------------------------------------------


def load() -> float:
    return os.getloadavg()[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--small", action="store_true", help="4 series x 40 slices of 256x256")
    parser.add_argument("--series", type=int)
    parser.add_argument("--slices", type=int)
    parser.add_argument("--size", type=int)
    parser.add_argument("--png-objects", type=int, help="objects rendered per PNG round (default 400, 80 small)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--dcm2niix-level", type=int, default=6, choices=range(1, 10), help="dcm2niix gzip level")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    parser.add_argument("--child", choices=sorted(CHILDREN), help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("paths", nargs="*", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        CHILDREN[args.child](args.out, args.paths)
        return
    count = args.series or (4 if args.small else 20)
    slices = args.slices or (40 if args.small else 200)
    size = args.size or (256 if args.small else 512)
    png_objects = args.png_objects or (80 if args.small else 400)
    root = Path(tempfile.mkdtemp(prefix="bench-dataset-"))
    report: dict[str, Any] = {"series": count, "slices": slices, "size": size, "cpus": os.cpu_count(),
                              "pigz": shutil.which("pigz") is not None, "dcm2niix_level": args.dcm2niix_level}
    try:
        started = time.perf_counter()
        series = [write_series(root / "dicom", s, slices, size) for s in range(count)]
        all_files = [p for folder in series for p in files_of(folder)]
        report["generate_seconds"] = round(time.perf_counter() - started, 1)
        report["dicom_mb"] = round(sum(p.stat().st_size for p in all_files) / 2**20)
        for path in all_files:  # warm the page cache for every side alike
            path.read_bytes()
        print(f"{count} series x {slices} slices of {size}x{size}: {report['dicom_mb']} MB", flush=True)

        figures: dict[str, Any] = {}
        for name, run in (
            ("lakehouse", lambda: run_child("nifti", root / "ours", series)),
            ("dcm2niix", lambda: run_dcm2niix(root / "dcm2niix", series, args.dcm2niix_level)),
            ("bare_nibabel", lambda: run_child("bare-nifti", root / "bare", series)),
        ):
            before = load()
            seconds, rss = run()
            figures[name] = {"seconds": round(seconds, 2), "series_per_s": round(count / seconds, 3),
                             "peak_rss_mb": round(rss), "load_before": before, "load_after": load()}
            print(f"nifti {name}: {figures[name]}", flush=True)
        figures["ratio_vs_dcm2niix"] = round(figures["lakehouse"]["seconds"] / figures["dcm2niix"]["seconds"], 2)
        figures["ratio_vs_bare_nibabel"] = round(
            figures["lakehouse"]["seconds"] / figures["bare_nibabel"]["seconds"], 2)
        sizes = {
            side: round(sum(p.stat().st_size for p in (root / side).glob("*.nii.gz")) / 2**20)
            for side in ("ours", "dcm2niix", "bare")
        }
        figures["output_mb"] = sizes
        figures["same_volume_as_dcm2niix"] = same_volume(
            root / "ours" / f"{series[0].name}.nii.gz", root / "dcm2niix" / f"{series[0].name}.nii.gz")
        report["nifti"] = figures

        half = series[: max(1, count // 2)]
        peaks: dict[str, list[int]] = {f"{len(half)}_series_mb": [], f"{count}_series_mb": []}
        for _ in range(2):  # twice each: one figure alone can be an outlier on a shared machine
            for label, chosen in zip(peaks, (half, series), strict=True):
                _, rss = run_child("nifti", root / "rss", chosen)
                peaks[label].append(round(rss))
        low, high = (min(v) for v in peaks.values())
        report["rss"] = {**peaks, "timed_run_mb": figures["lakehouse"]["peak_rss_mb"], "ratio_min": round(high / low, 2)}
        print(f"rss: {report['rss']}", flush=True)

        png_files = all_files[:png_objects]
        sides = {"lakehouse": png_ours, "bare_default": png_bare, "bare_level1": png_bare_level1,
                 "lakehouse_level6": png_ours_level6}
        rounds: dict[str, list[float]] = {side: [] for side in sides}
        for r in range(args.rounds):
            for side, render in list(sides.items())[:: 1 if r % 2 == 0 else -1]:
                out = root / f"png-{side}"
                shutil.rmtree(out, ignore_errors=True)
                out.mkdir()
                rounds[side].append(render(png_files, out))
        rate = {side: round(len(png_files) / min(times), 1) for side, times in rounds.items()}
        kb = {side: round(sum(p.stat().st_size for p in (root / f"png-{side}").glob("*.png")) / len(png_files) / 1024, 1)
              for side in sides}
        report["png"] = {
            "objects": len(png_files),
            "objects_per_s": rate,
            "kb_per_png": kb,
            "ratio_vs_bare_default": round(rate["lakehouse"] / rate["bare_default"], 2),
            "ratio_vs_bare_level1": round(rate["lakehouse"] / rate["bare_level1"], 2),
            "ratio_level6_vs_bare_default": round(rate["lakehouse_level6"] / rate["bare_default"], 2),
            "load": load(),
        }
        print(f"png: {report['png']}", flush=True)
    finally:
        if args.keep:
            print(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    print(json.dumps(report, indent=1))
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
