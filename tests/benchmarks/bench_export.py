"""Whole-process export speed and peak memory, as a user runs it; run by hand (not collected by pytest).

    .venv/bin/python tests/benchmarks/bench_export.py --n 200 --corpus synth      # smoke
    .venv/bin/python tests/benchmarks/bench_export.py --n 2000 --json bench-export.json
    .venv/bin/python tests/benchmarks/bench_export.py --n 500 --profile             # where the time goes
    .venv/bin/python tests/benchmarks/bench_export.py --n 400 --spark               # Spark: 2 workers x 1 core vs 1 slot

For each N: writes an archive of about N objects (``--corpus realistic``, the default: ~230 header
elements per object with nested sequences, CT/MR/CR/US/SC/PR/SR/KO, ``realistic_corpus.py``;
or ``synth``: the demo's synthetic archive), catalogs it, submits and approves a request over all of it,
then times ``lakehouse export run`` as a user runs it: the CLI in its own process (start-up, imports,
planning, the quality gate and the Delta commits included), the archive throttle lifted, once with
``--engine local`` (``--workers`` processes) and, with ``--spark-local``, once with ``--engine spark``
(local mode), each on its own copy of the root. It polls the RSS of the CLI process and all its
descendants every ``--poll`` seconds. In the same run, on the same files, it also times:

* a one-object export (the fixed cost: start-up, GX import, planning, commit), local engine;
* ``python -m dicognito --in-place --quiet`` over a copy of the archive (the whole CLI run);
* a bare pydicom loop in its own process: ``dcmread`` each file, ``save_as`` into a new folder.

Ratios: dicognito's seconds over the export's (target >= 3); the export's per-object cost,
``(T(N) - T(one object)) / (N - 1)``, over the bare loop's per-object cost (target <= 1.5); and the
one-object export's seconds (target < 2). Every side reads from a warm page cache (one read pass
before any timing); rates count every archive object (exported or quarantined). Memory:
``peak_rss_tree_mb`` is the largest sum of RSS over the process tree (pages shared between forked
processes count once per process); ``peak_pss_tree_mb`` the largest sum of PSS (read every
``PSS_EVERY``-th poll); ``peak_rss_max_process_mb`` the largest single process. The 1-minute load
average is printed before and after each timed side (the machine may be shared).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import math
import os
import pstats
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import psutil

sys.path[:0] = [str(Path(__file__).resolve().parents[1]), str(Path(__file__).resolve().parents[1] / "export")]

from export_testing import ROLES, prepare
from lakehouse_testing import set_sections

from lakehouse.config import init_root, load_settings
from lakehouse.synth import synthesize_archive

USER = "olga"
UNCAPPED = {"requests_per_second": 0, "bytes_per_second": 0}
# Per synthetic patient: ct_slices CT + SR + KO + (3 MR | CR + SC | 1 US): on average ct_slices + 4.
OTHER_OBJECTS_PER_PATIENT = 4
PSS_EVERY = 5


# --- corpus -------------------------------------------------------------------------------


def build_root(root: Path, n: int, *, corpus: str, ct_size: int, ct_slices: int, seed: int, workers: int,
               batch_size: int) -> tuple[Path, str, list[Path]]:
    """A lakehouse root with an archive of about ``n`` objects and an approved request (not exported).
    A root left by an earlier run in the same --workdir (``request_id.txt`` present) is reused."""
    saved = root / "request_id.txt"
    if saved.is_file():
        files = sorted(p for p in (root / "archive").rglob("*") if p.is_file())
        return root / "lakehouse.toml", saved.read_text().strip(), files
    config = init_root(root, min_k=1)  # synthetic cohorts are not k-anonymous; the floor is not what is measured
    set_sections(
        config,
        roles=ROLES,
        throttle=UNCAPPED,
        export={"workers": workers, "batch_size": batch_size},
    )
    if corpus == "realistic":
        from realistic_corpus import write_realistic_archive

        write_realistic_archive(root / "archive", n, seed=seed, ct_size=ct_size)
    elif n == 1:  # one CT slice of one patient
        synthesize_archive(root / "archive", patients=1, seed=seed, ct_size=ct_size, ct_slices=1)
        kept = next(p for p in sorted((root / "archive").rglob("*")) if p.is_file() and _modality(p) == "CT")
        for p in (root / "archive").rglob("*"):
            if p.is_file() and p != kept:
                p.unlink()
    else:
        patients = max(1, math.ceil(n / (ct_slices + OTHER_OBJECTS_PER_PATIENT)))
        synthesize_archive(root / "archive", patients=patients, seed=seed, ct_size=ct_size, ct_slices=ct_slices)
    request_id = prepare(config)
    saved.write_text(request_id)
    files = sorted(p for p in (root / "archive").rglob("*") if p.is_file())
    return config, request_id, files


def _modality(path: Path) -> str:
    import pydicom

    return str(pydicom.dcmread(path, stop_before_pixels=True).get("Modality", ""))


def fresh_copy(config: Path, name: str) -> Path:
    """A copy of a prepared root (same request, same project key) for one timed export."""
    copy = config.parent.parent / name
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(config.parent, copy)
    return copy / "lakehouse.toml"


def warm(files: list[Path]) -> None:
    for f in files:
        f.read_bytes()


def load1() -> float:
    return round(os.getloadavg()[0], 2)


# --- the export, in a child process whose tree is polled ----------------------------------


class TreePoller(threading.Thread):
    """Polls the summed RSS of a process and all its descendants."""

    def __init__(self, pid: int, interval: float) -> None:
        super().__init__(daemon=True)
        self.root = psutil.Process(pid)
        self.interval = interval
        self.peak_sum = self.peak_single = self.peak_processes = self.peak_pss = 0
        self.samples = 0
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            total, single, count, pss = 0, 0, 0, 0
            try:
                procs = [self.root, *self.root.children(recursive=True)]
            except psutil.NoSuchProcess:
                return
            for p in procs:
                try:
                    rss = p.memory_info().rss
                    if self.samples % PSS_EVERY == 0:
                        pss += getattr(p.memory_full_info(), "pss", 0)
                except (psutil.NoSuchProcess, psutil.AccessDenied):
                    continue
                total += rss
                single = max(single, rss)
                count += 1
            self.peak_sum = max(self.peak_sum, total)
            self.peak_pss = max(self.peak_pss, pss)
            self.peak_single = max(self.peak_single, single)
            self.peak_processes = max(self.peak_processes, count)
            self.samples += 1
            self.stop.wait(self.interval)


def measure_export(config: Path, request_id: str, *, engine: str, workers: int, poll: float) -> dict[str, Any]:
    """``lakehouse export run`` in its own process, as a user runs it; its tree's memory polled."""
    cli = Path(sys.executable).with_name("lakehouse")
    before = load1()
    started = time.perf_counter()
    proc = subprocess.Popen(
        [str(cli), "export", "run", request_id, "--user", USER, "--engine", engine, "--workers", str(workers),
         "--json", "--config", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "LAKEHOUSE_NO_PROGRESS": "1"},
    )
    poller = TreePoller(proc.pid, poll)
    poller.start()
    out, err = proc.communicate()
    wall = time.perf_counter() - started
    poller.stop.set()
    poller.join()
    if proc.returncode:
        raise SystemExit(f"lakehouse export run failed (exit {proc.returncode}):\n{err[-4000:]}")
    state = json.loads(out)
    return {
        "process_wall_seconds": round(wall, 2),
        "run_seconds": state["seconds"],  # the run itself, as its state records it (no start-up)
        "engine": engine,
        "status": state["status"],
        "error": state["error"],
        "exported": state["exported"],
        "quarantined": state["quarantined"],
        "bytes_read": state["bytes_read"],
        "bytes_written": state["bytes_written"],
        "batches": state["batches"],
        "peak_rss_tree_mb": round(poller.peak_sum / 2**20, 1),
        "peak_pss_tree_mb": round(poller.peak_pss / 2**20, 1),
        "peak_rss_max_process_mb": round(poller.peak_single / 2**20, 1),
        "peak_processes": poller.peak_processes,
        "load1_before": before,
        "load1_after": load1(),
    }


# --- the comparisons ----------------------------------------------------------------------


def measure_dicognito(files: list[Path], scratch: Path) -> dict[str, Any]:
    work = scratch / "dicognito-copy"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    for i, f in enumerate(files):  # copied before timing; flat names, no collisions
        shutil.copyfile(f, work / f"{i:06d}.dcm")
    warm(sorted(work.iterdir()))
    before = load1()
    started = time.perf_counter()
    run = subprocess.run(
        [sys.executable, "-m", "dicognito", "--in-place", "--quiet", str(work)],
        capture_output=True, text=True, check=False,
    )
    seconds = time.perf_counter() - started
    row = {"seconds": round(seconds, 2), "exit": run.returncode, "load1_before": before, "load1_after": load1()}
    shutil.rmtree(work, ignore_errors=True)
    return row


BARE_LOOP = """
import sys
from pathlib import Path
import pydicom
out = Path(sys.argv[1])
for i, line in enumerate(sys.stdin.read().splitlines()):
    pydicom.dcmread(line).save_as(out / f"{i:06d}.dcm")
"""


def measure_bare(files: list[Path], scratch: Path) -> dict[str, Any]:
    """The bare loop as its own process (interpreter start and pydicom's import included)."""
    out = scratch / "bare-out"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    before = load1()
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", BARE_LOOP, str(out)], input="\n".join(map(str, files)), text=True,
                   check=True)
    seconds = time.perf_counter() - started
    row = {"seconds": round(seconds, 2), "load1_before": before, "load1_after": load1()}
    shutil.rmtree(out, ignore_errors=True)
    return row


def rates(seconds: float, objects: int, megabytes: float) -> dict[str, float]:
    return {"objects_per_s": round(objects / seconds, 1), "mb_per_s": round(megabytes / seconds, 1)}


# --- one size -----------------------------------------------------------------------------


def bench_size(n: int, args: argparse.Namespace, scratch: Path, one: dict[str, Any] | None) -> dict[str, Any]:
    root = scratch / f"root-{n}"
    t0 = time.perf_counter()
    config, request_id, files = build_root(
        root, n, corpus=args.corpus, ct_size=args.ct_size, ct_slices=args.ct_slices, seed=args.seed,
        workers=args.workers, batch_size=args.batch_size,
    )
    setup_seconds = time.perf_counter() - t0
    megabytes = sum(f.stat().st_size for f in files) / 1e6
    warm(files)
    print(f"[n={n}] corpus: {len(files)} objects, {megabytes:.0f} MB (setup {setup_seconds:.0f} s); "
          f"load1 {load1()}", file=sys.stderr, flush=True)
    row: dict[str, Any] = {"n_requested": n, "objects": len(files), "corpus_mb": round(megabytes, 1),
                           "setup_seconds": round(setup_seconds, 1), "exports": {}}
    for engine in ("local", "spark") if args.spark_local else ("local",):
        copy = fresh_copy(config, f"run-{n}-{engine}")
        export = measure_export(copy, request_id, engine=engine, workers=args.workers, poll=args.poll)
        export.update(rates(export["process_wall_seconds"], len(files), megabytes))
        row["exports"][engine] = export
        print(f"[n={n}] export --engine {engine}: {export['process_wall_seconds']} s", file=sys.stderr, flush=True)
        if not args.keep:
            shutil.rmtree(copy.parent, ignore_errors=True)
    if one is not None:
        bare = measure_bare(files, scratch)
        bare.update(rates(bare["seconds"], len(files), megabytes))
        print(f"[n={n}] bare loop: {bare['seconds']} s", file=sys.stderr, flush=True)
        dicognito = measure_dicognito(files, scratch)
        dicognito.update(rates(dicognito["seconds"], len(files), megabytes))
        print(f"[n={n}] dicognito: {dicognito['seconds']} s", file=sys.stderr, flush=True)
        row["bare_pydicom_loop"] = bare
        row["dicognito_cli"] = dicognito
        local = row["exports"]["local"]["process_wall_seconds"]
        per_object = (local - one["process_wall_seconds"]) / max(1, len(files) - 1)
        row["ratios"] = {
            "dicognito_over_export (target >= 3)": round(dicognito["seconds"] / local, 2),
            "export_per_object_ms": round(per_object * 1000, 2),
            "bare_loop_per_object_ms": round(bare["seconds"] / len(files) * 1000, 2),
            "export_per_object_over_bare (target <= 1.5)": round(per_object / (bare["seconds"] / len(files)), 2),
            "one_object_export_seconds (target < 2)": one["process_wall_seconds"],
        }
        if "spark" in row["exports"]:
            row["ratios"]["dicognito_over_spark_local"] = round(
                dicognito["seconds"] / row["exports"]["spark"]["process_wall_seconds"], 2)
    if not args.keep:
        shutil.rmtree(root, ignore_errors=True)
    return row


def bench_one_object(args: argparse.Namespace, scratch: Path) -> dict[str, Any]:
    """The fixed cost: a one-object export, whole process, best of three fresh copies."""
    config, request_id, files = build_root(
        scratch / "root-1", 1, corpus="synth", ct_size=args.ct_size, ct_slices=1, seed=args.seed,
        workers=args.workers, batch_size=args.batch_size,
    )
    assert len(files) == 1, files
    warm(files)
    runs = []
    for attempt in range(3):
        copy = fresh_copy(config, f"run-1-{attempt}")
        runs.append(measure_export(copy, request_id, engine="local", workers=args.workers, poll=args.poll))
        shutil.rmtree(copy.parent, ignore_errors=True)
    best = min(runs, key=lambda r: r["process_wall_seconds"])
    print(f"[n=1] export: best {best['process_wall_seconds']} s of "
          f"{[r['process_wall_seconds'] for r in runs]}", file=sys.stderr, flush=True)
    return {**best, "attempts": [r["process_wall_seconds"] for r in runs]}


# --- profile ------------------------------------------------------------------------------


def profile_export(args: argparse.Namespace, scratch: Path) -> None:
    """cProfile of run_export in one process (workers=1 runs batches in the driver, so the
    worker's stages show up); prints the top functions by cumulative and by own time."""
    import warnings

    warnings.simplefilter("ignore")
    from lakehouse.export import run_export

    n = args.n[0]
    config, request_id, files = build_root(
        scratch / f"profile-{n}", n, corpus=args.corpus, ct_size=args.ct_size, ct_slices=args.ct_slices,
        seed=args.seed, workers=1, batch_size=args.batch_size,
    )
    warm(files)
    settings = load_settings(fresh_copy(config, f"profile-{n}-run"), env={})
    profiler = cProfile.Profile()
    started = time.perf_counter()
    profiler.enable()
    outcome = run_export(settings, request_id, user=USER, engine="local", workers=1)
    profiler.disable()
    seconds = time.perf_counter() - started
    print(f"profile: {len(files)} objects, workers=1, {seconds:.1f} s, "
          f"{len(files) / seconds:.1f} objects/s, status {outcome.state.status}")
    for order in ("cumulative", "tottime"):
        buffer = io.StringIO()
        pstats.Stats(profiler, stream=buffer).strip_dirs().sort_stats(order).print_stats(args.profile_top)
        print(buffer.getvalue())


# --- Spark: a standalone cluster of 2 workers x 1 core, against the same cluster held to 1 slot


def bench_spark(args: argparse.Namespace, scratch: Path) -> dict[str, Any]:
    """``spark-submit jobs/export_spark.py`` on a standalone cluster on 127.0.0.1 (2 workers of
    1 core, started and stopped here), once held to one task slot (``spark.cores.max=1``) and
    once with both, each on its own copy of the same root (same request, same key)."""
    from spark_cluster import spark_submit, standalone_cluster

    n = args.n[0]
    config, request_id, files = build_root(
        scratch / f"spark-{n}", n, corpus=args.corpus, ct_size=args.ct_size, ct_slices=args.ct_slices,
        seed=args.seed, workers=2, batch_size=args.batch_size,
    )
    warm(files)
    result: dict[str, Any] = {"objects": len(files), "corpus_mb": round(sum(f.stat().st_size for f in files) / 1e6, 1)}
    with standalone_cluster(scratch / "cluster", workers=2, cores=1) as cluster:
        for slots in (1, 2):
            root = scratch / f"spark-{n}-{slots}-slots"
            shutil.rmtree(root, ignore_errors=True)
            shutil.copytree(config.parent, root)
            before = load1()
            started = time.perf_counter()
            done = spark_submit(
                cluster, ["--config", str(root / "lakehouse.toml"), "--user", USER, request_id], py_files=[],
                python=Path(sys.executable), conf={"spark.cores.max": str(slots)}, timeout=3600,
                env={"LAKEHOUSE_NO_PROGRESS": "1"},
            )
            wall = time.perf_counter() - started
            if done.returncode:
                raise SystemExit(f"spark-submit failed (exit {done.returncode}):\n{done.stderr[-4000:]}")
            state = json.loads(done.stdout[done.stdout.index("{"):])
            result[f"{slots}_slot{'s' if slots > 1 else ''}"] = {
                "run_seconds": state["seconds"], "spark_submit_wall_seconds": round(wall, 2),
                "status": state["status"], "exported": state["exported"], "batches": state["batches"],
                "load1_before": before, "load1_after": load1(),
            }
            print(f"[spark] {slots} slot(s): run {state['seconds']} s, spark-submit {wall:.1f} s",
                  file=sys.stderr, flush=True)
            if not args.keep:
                shutil.rmtree(root, ignore_errors=True)
    one, two = result["1_slot"], result["2_slots"]
    result["ratio_2x1_vs_1_slot (target <= 0.6)"] = round(two["run_seconds"] / one["run_seconds"], 2)
    result["ratio_wall_incl_jvm_start"] = round(two["spark_submit_wall_seconds"] / one["spark_submit_wall_seconds"], 2)
    return result


# --- output -------------------------------------------------------------------------------


def print_table(result: dict[str, Any]) -> None:
    print(f"\ncpus {result['cpus']}, workers {result['workers']}, corpus {result['corpus']}, batch "
          f"{result['batch_size']}; load average at start {result['loadavg_start']}, at end {result['loadavg_end']}")
    one = result["one_object"]
    print(f"one-object export (whole process, best of 3): {one['process_wall_seconds']} s {one['attempts']}\n")
    head = f"{'N':>6} {'side (whole process)':28} {'seconds':>8} {'obj/s':>7} {'MB/s':>7} {'load1':>11}  notes"
    print(head)
    print("-" * len(head))
    for row in result["sizes"]:
        sides = []
        for engine, ex in row["exports"].items():
            status = ex["status"] if ex["status"] == "succeeded" else f"{ex['status'].upper()} ({ex['error']})"
            sides.append((f"lakehouse export --engine {engine}", ex["process_wall_seconds"], ex,
                          (f"{status}; exported {ex['exported']}, quarantined {ex['quarantined']}; "
                          f"peak RSS tree {ex['peak_rss_tree_mb']} MB, PSS {ex['peak_pss_tree_mb']} MB")))
        if "bare_pydicom_loop" in row:
            b = row["bare_pydicom_loop"]
            sides.append(("bare pydicom read+write", b["seconds"], b, "1 process"))
            d = row["dicognito_cli"]
            sides.append(("python -m dicognito", d["seconds"], d, f"1 process, exit {d['exit']}"))
        for name, seconds, r, note in sides:
            load = f"{r['load1_before']}->{r['load1_after']}"
            print(f"{row['objects']:>6} {name:28} {seconds:8.2f} {r['objects_per_s']:7.1f} {r['mb_per_s']:7.1f} "
                  f"{load:>11}  {note}")
        if "ratios" in row:
            print(f"{'':>6} ratios: " + ", ".join(f"{k} = {v}" for k, v in row["ratios"].items()))
        print()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, nargs="+", default=[2000], help="corpus sizes, objects (default 2000)")
    parser.add_argument("--corpus", choices=("realistic", "synth"), default="realistic",
                        help="realistic: ~230 elements per object, 8 object kinds (default); synth: the demo's archive")
    parser.add_argument("--ct-size", type=int, default=256, help="CT rows = columns (512: ~0.5 MB per slice)")
    parser.add_argument("--ct-slices", type=int, default=46, help="CT slices per synthetic patient")
    parser.add_argument("--workers", type=int, default=2, help="export worker processes")
    parser.add_argument("--batch-size", type=int, default=250, help="[export] batch_size")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--poll", type=float, default=0.05, help="RSS poll interval, seconds")
    parser.add_argument("--compare-all", action="store_true", help="compare with dicognito/bare at every N")
    parser.add_argument("--spark-local", action="store_true", help="also time --engine spark (local mode) at each N")
    parser.add_argument("--profile", action="store_true", help="only profile run_export (workers=1) at the first --n")
    parser.add_argument("--profile-top", type=int, default=30)
    parser.add_argument("--spark", action="store_true",
                        help="only the Spark engine at the first --n: 2 workers x 1 core against 1 slot")
    parser.add_argument("--workdir", type=Path, help="scratch folder (default: a temporary one, removed)")
    parser.add_argument("--keep", action="store_true", help="keep the lakehouse roots")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)

    scratch = args.workdir or Path(tempfile.mkdtemp(prefix="bench-export-"))
    scratch.mkdir(parents=True, exist_ok=True)
    try:
        if args.profile:
            profile_export(args, scratch)
            return 0
        if args.spark:
            spark = bench_spark(args, scratch)
            print(json.dumps(spark, sort_keys=True, indent=1))
            if args.json:
                args.json.write_text(json.dumps(spark, indent=1, sort_keys=True))
            return 0
        result: dict[str, Any] = {
            "cpus": os.cpu_count(),
            "workers": args.workers,
            "corpus": args.corpus,
            "ct_size": args.ct_size,
            "ct_slices": args.ct_slices,
            "batch_size": args.batch_size,
            "loadavg_start": [round(x, 2) for x in os.getloadavg()],
            "sizes": [],
        }
        result["one_object"] = one = bench_one_object(args, scratch)
        for i, n in enumerate(args.n):
            result["sizes"].append(bench_size(n, args, scratch, one if args.compare_all or i == 0 else None))
        result["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    finally:
        if not args.workdir and not args.keep:
            shutil.rmtree(scratch, ignore_errors=True)
    print_table(result)
    print(json.dumps(result, sort_keys=True))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
