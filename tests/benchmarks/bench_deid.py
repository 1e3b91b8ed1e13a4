"""De-identification benchmark, run by hand (not part of the test suite).

On one planted-PHI corpus (tests/deid/planted.py), in one run:

* throughput (objects/s, MB/s of input) of our engine in a process pool and in one process,
  of ``python -m dicognito`` (its CLI, single process), of pydicom/deid's default recipe, and
  of a bare pydicom read-and-write loop, with the ratios the issue targets
  (ours ≥ 1.5× dicognito; ours within 2× of the bare loop);
* a leak table: how many planted tokens survive in each tool's output, by planting site.

    .venv/bin/python tests/benchmarks/bench_deid.py --n 40            # smoke
    .venv/bin/python tests/benchmarks/bench_deid.py --n 2000 --size 512 --json bench.json

Needs the ``bench`` extra (dicognito) and ``deid`` (pydicom/deid) for their rows; a missing
tool is reported as such, not fatal.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pydicom

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "deid"))

from planted import surviving_tokens, write_corpus

from lakehouse.deid import DeidSettings, deidentify, parse_options

KEY = b"benchmark-key-not-a-secret-0000000"
DEFAULT_OPTIONS = ""  # the Basic Profile alone: the strictest setting (options only retain or clean more)


# --- the tools, each: (input files, output folder) -> outputs keyed by input name -----------


def _ours_one(task: tuple[str, str, tuple[str, ...]]) -> tuple[str, str]:
    source, out_dir, options = task
    result = deidentify(Path(source).read_bytes(), _settings(options))
    if result.data is not None:
        (Path(out_dir) / Path(source).name).write_bytes(result.data)
        return Path(source).name, "deidentified"
    return Path(source).name, f"quarantined:{result.reason}"


def _settings(options: tuple[str, ...]) -> DeidSettings:
    return DeidSettings(project="bench", key=KEY, options=parse_options(options))


def run_ours(files: list[Path], out: Path, options: tuple[str, ...], workers: int) -> Counter[str]:
    tasks = [(str(f), str(out), options) for f in files]
    if workers <= 1:
        return Counter(outcome for _, outcome in map(_ours_one, tasks))
    with ProcessPoolExecutor(max_workers=workers) as pool:
        return Counter(
            outcome
            for _, outcome in pool.map(_ours_one, tasks, chunksize=max(1, len(tasks) // (8 * workers)))
        )


def copy_for_dicognito(files: list[Path], scratch: Path) -> Path:
    """dicognito anonymizes in place: it gets its own copy of the corpus (copied before timing)."""
    work = scratch / "dicognito-copy"
    work.mkdir()
    for f in files:
        shutil.copy(f, work / f.name)
    return work


def run_dicognito(work: Path) -> Counter[str]:
    """``python -m dicognito --in-place`` on the copied corpus: its CLI, as a user runs it."""
    run = subprocess.run(
        [sys.executable, "-m", "dicognito", "--in-place", "--quiet", str(work)],
        capture_output=True,
        text=True,
        check=False,
    )
    count = len(list(work.glob("*.dcm")))
    return Counter({f"failed:exit {run.returncode}" if run.returncode else "written": count})


def run_deid_recipe(files: list[Path], out: Path) -> Counter[str]:
    """pydicom/deid's ``replace_identifiers`` with its default ``dicom`` recipe and defaults."""
    from deid.config import DeidRecipe
    from deid.dicom import replace_identifiers

    written = replace_identifiers(
        [str(f) for f in files], deid=DeidRecipe(), save=True, output_folder=str(out), overwrite=True
    )
    return Counter({"written": len(written)})


def run_bare(files: list[Path], out: Path) -> Counter[str]:
    for f in files:
        pydicom.dcmread(f).save_as(out / f.name)
    return Counter({"written": len(files)})


# --- measurement --------------------------------------------------------------------------


def measure(name: str, tool: Callable[[Path], Counter[str]], out: Path, files: list[Path]) -> dict:
    out.mkdir(exist_ok=True)
    started = time.perf_counter()
    try:
        outcomes = tool(out)
    except ImportError as exc:
        return {"tool": name, "error": f"not installed ({exc.name})"}
    seconds = time.perf_counter() - started
    megabytes = sum(f.stat().st_size for f in files) / 1e6
    return {
        "tool": name,
        "seconds": round(seconds, 3),
        "objects_per_s": round(len(files) / seconds, 1),
        "mb_per_s": round(megabytes / seconds, 2),
        "outcomes": dict(outcomes),
        "out": str(out),
    }


def outputs_by_source(out: Path) -> dict[str, bytes]:
    """Output bytes keyed by the source file name. dicognito and deid rename files, so outputs
    are matched through Instance Number, which the corpus sets uniquely and no tool changes."""
    found: dict[str, bytes] = {}
    for path in out.rglob("*"):
        if not path.is_file():
            continue
        data = path.read_bytes()
        try:
            number = int(
                pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True, force=True).InstanceNumber
            )
        except Exception:  # noqa: BLE001, S112 - stray files (logs, caches) are not outputs
            continue
        found[f"#{number}"] = data
    return found


def leak_table(answer: dict[str, dict], out: Path) -> dict:
    """Surviving tokens for one tool's output folder, by site (tag or sequence the token was put in)."""
    outputs = outputs_by_source(out)
    survived: Counter[str] = Counter()
    objects_leaking = published = 0
    for index, (name, entry) in enumerate(sorted(answer.items())):
        data = outputs.get(f"#{index + 1}")
        if data is None:
            continue
        published += 1
        found = surviving_tokens(data, entry["tokens"])
        objects_leaking += bool(found)
        survived.update(_site(where) for where in found.values())
    return {
        "published": published,
        "objects_leaking": objects_leaking,
        "tokens_surviving": sum(survived.values()),
        "by_site": dict(survived.most_common()),
    }


def _site(where: str) -> str:
    """The planting site without item indexes and name-component suffixes."""
    return re.sub(r"\[(\d+|family|given|middle)\]", "", where).replace("#date", "")


def main() -> None:
    parser = argparse.ArgumentParser(description="De-identification throughput and leak benchmark.")
    parser.add_argument("--n", type=int, default=200, help="objects in the planted corpus")
    parser.add_argument("--size", type=int, default=256, help="image rows = columns")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--options", default=DEFAULT_OPTIONS, help="our options, comma-separated")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    options = tuple(o for o in args.options.split(",") if o)

    scratch = Path(tempfile.mkdtemp(prefix="bench-deid-"))
    corpus = scratch / "corpus"
    answer = write_corpus(corpus, args.n, size=args.size)
    files = sorted(corpus.glob("*.dcm"))
    dicognito_copy = copy_for_dicognito(files, scratch)
    tools: dict[str, tuple[Callable[[Path], Counter[str]], Path]] = {
        f"ours (pool of {args.workers})": (
            lambda out: run_ours(files, out, options, args.workers),
            scratch / "ours-pool",
        ),
        "ours (1 process)": (lambda out: run_ours(files, out, options, 1), scratch / "ours-1"),
        "dicognito CLI": (run_dicognito, dicognito_copy),
        "deid default recipe": (lambda out: run_deid_recipe(files, out), scratch / "deid"),
        "bare pydicom read+write": (lambda out: run_bare(files, out), scratch / "bare"),
    }
    rows = [measure(name, tool, out, files) for name, (tool, out) in tools.items()]
    for row in rows:
        if "out" in row and not row["tool"].startswith("bare"):
            row["leaks"] = leak_table(answer, Path(row["out"]))
    result = {
        "n": args.n,
        "size": args.size,
        "options": list(options),
        "corpus_mb": round(sum(f.stat().st_size for f in files) / 1e6, 2),
        "tokens_planted": sum(len(e["tokens"]) for e in answer.values()),
        "rows": rows,
        "ratios": _ratios(rows),
    }
    _print(result)
    print(json.dumps(result, indent=1, default=str))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1, default=str))
    if not args.keep:
        shutil.rmtree(scratch, ignore_errors=True)


def _ratios(rows: list[dict]) -> dict:
    rate = {r["tool"]: r.get("objects_per_s") for r in rows}
    pool = next((v for k, v in rate.items() if k.startswith("ours (pool")), None)
    single, dicognito, bare = (
        rate.get("ours (1 process)"),
        rate.get("dicognito CLI"),
        rate.get("bare pydicom read+write"),
    )
    ratio = lambda a, b: round(a / b, 2) if a and b else None
    return {
        "ours_pool_vs_dicognito (target >= 1.5)": ratio(pool, dicognito),
        "ours_1proc_vs_dicognito": ratio(single, dicognito),
        "bare_vs_ours_1proc (target <= 2)": ratio(bare, single),
        "bare_vs_ours_pool": ratio(bare, pool),
    }


def _print(result: dict) -> None:
    print(
        f"\ncorpus: {result['n']} planted objects, {result['size']}x{result['size']}, {result['corpus_mb']} MB, "
        f"{result['tokens_planted']} tokens; our options: {','.join(result['options']) or 'basic'}\n"
    )
    print(
        f"{'tool':28} {'seconds':>8} {'obj/s':>8} {'MB/s':>8}  {'published':>9} {'leaking':>8} {'tokens':>7}"
    )
    for row in result["rows"]:
        if "error" in row:
            print(f"{row['tool']:28} {row['error']}")
            continue
        leaks = row.get("leaks", {})
        print(
            f"{row['tool']:28} {row['seconds']:8.2f} {row['objects_per_s']:8.1f} {row['mb_per_s']:8.2f}  "
            f"{leaks.get('published', '-'):>9} {leaks.get('objects_leaking', '-'):>8} {leaks.get('tokens_surviving', '-'):>7}"
        )
    print("\nratios:", json.dumps(result["ratios"]))
    sites = sorted({s for r in result["rows"] for s in r.get("leaks", {}).get("by_site", {})})
    leakers = [r for r in result["rows"] if "leaks" in r]
    if sites:
        print(
            f"\nsurviving tokens by planting site\n{'site':52}"
            + "".join(f"{r['tool'][:14]:>16}" for r in leakers)
        )
        for site in sites:
            print(f"{site[:52]:52}" + "".join(f"{r['leaks']['by_site'].get(site, 0):>16}" for r in leakers))


if __name__ == "__main__":
    main()
