"""Differential check for speed work on de-identification and flattening; run by hand.

A speed change to ``lakehouse.deid`` or ``lakehouse.flatten`` must not change what leaves the
archive. This records, for every (object, option set) case, a digest of everything the export
keeps of it: the outcome, quarantine reason and tag path, the output bytes, the UID map, the
pseudo patient, the harvested identifiers, the report, and the flattened rows (study, series,
instance with its header JSON, and every attribute row). Record the digests with the code before
the change, then compare with the code after it:

    git worktree add /tmp/base HEAD
    .venv/bin/python tests/benchmarks/deid_differential.py record --repo /tmp/base --out /tmp/before.jsonl
    .venv/bin/python tests/benchmarks/deid_differential.py compare --repo . --against /tmp/before.jsonl

The corpus is every DICOM file of the test-data packages the suite uses (pydicom's test files,
pydicom-data, deid-data, nibabel's and pynetdicom's), the demo's synthetic archive, and
``--realistic N`` objects of the benchmark's realistic corpus; each runs under several option
sets (none, the export tests' set, each option alone, and everything compatible; ``--quick``:
none, the export's and everything). ``compare``
exits 1 and names the first differing cases (file, options, which part differs), never values.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
EXPORT_OPTIONS = ["retain-modified-dates", "clean-descriptors", "clean-structured-content", "clean-graphics"]
KEY = hashlib.sha256(b"lakehouse differential check").digest()


def option_sets(quick: bool) -> list[list[str]]:
    from lakehouse.deid.options import option_catalog

    names = sorted(option_catalog().options)
    everything = [n for n in names if n not in ("retain-full-dates", "clean-pixel-data")]
    return [[], EXPORT_OPTIONS, everything] if quick else [[], EXPORT_OPTIONS, *([n] for n in names), everything]


def corpus(scratch: Path, realistic: int) -> list[tuple[str, bytes]]:
    """(name, bytes) of every case file, in a stable order."""
    sys.path[:0] = [str(HERE.parent), str(HERE.parent / "deid")]
    from corpora import (
        DATA_STORE,
        DEID_DATA,
        NIBABEL_FILES,
        PYDICOM_FILES,
        PYNETDICOM_FILES,
        files_under,
        read_bytes,
    )

    from lakehouse.synth import synthesize_archive

    cases: list[tuple[str, bytes]] = []
    for label, folder in (("pydicom", PYDICOM_FILES), ("data_store", DATA_STORE), ("deid_data", DEID_DATA),
                          ("nibabel", NIBABEL_FILES), ("pynetdicom", PYNETDICOM_FILES)):
        for path in files_under(folder):
            data = read_bytes(path)
            if len(data) <= 64 * 1024 * 1024:
                cases.append((f"{label}/{path.relative_to(folder)}", data))
    synthesize_archive(scratch / "synth", patients=3, seed=5, ct_size=32, ct_slices=4)
    if realistic:
        from realistic_corpus import write_realistic_archive

        write_realistic_archive(scratch / "realistic", realistic, seed=3, ct_size=32)
    for label in ("synth", "realistic"):
        for path in sorted(p for p in (scratch / label).rglob("*") if p.is_file()):
            cases.append((f"{label}/{path.relative_to(scratch / label)}", path.read_bytes()))
    return cases


def digest(data: bytes, options: list[str]) -> dict[str, str]:
    """What the export keeps of one case, each part hashed (no value ever printed)."""
    from lakehouse.deid.engine import DeidSettings, deidentify
    from lakehouse.flatten.rows import Provenance, flatten

    result = deidentify(data, DeidSettings(project="diff", key=KEY, options=frozenset(options)))
    parts: dict[str, Any] = {
        "outcome": [result.outcome, result.reason, result.tag_path],
        "data": hashlib.sha256(result.data).hexdigest() if result.data is not None else None,
        "uids": sorted(result.uid_map.items()),
        "patient": result.pseudo_patient_id,
        "identifiers": sorted(result.source_identifiers),
        "report": result.report,
    }
    if result.dataset is not None and result.data is not None:
        provenance = Provenance("run", "request", "diff", "profile", tuple(sorted(options)))
        try:
            flat = flatten(result.dataset, provenance, object_key="key", object_sha256=parts["data"],
                           object_size=len(result.data))
            parts["rows"] = [flat.study, flat.series, flat.instance, flat.attribute_base, flat.attribute_columns]
        except Exception as exc:  # noqa: BLE001 - the kind of refusal is what is compared
            parts["rows"] = f"raised {type(exc).__name__}: {getattr(exc, 'code', '')}"
    return {name: hashlib.sha256(json.dumps(value, sort_keys=True, default=repr).encode()).hexdigest()
            for name, value in parts.items()}


def digests(realistic: int, quick: bool) -> list[dict[str, Any]]:
    with tempfile.TemporaryDirectory() as scratch:
        cases = corpus(Path(scratch), realistic)
    out = []
    sets = option_sets(quick)
    for name, data in cases:
        for options in sets:
            out.append({"case": name, "options": options, **digest(data, options)})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("mode", choices=("record", "compare"))
    parser.add_argument("--repo", type=Path, default=HERE.parents[1], help="the checkout whose lakehouse is run")
    parser.add_argument("--out", type=Path, help="record: where the digests go (JSON lines)")
    parser.add_argument("--against", type=Path, help="compare: digests recorded before the change")
    parser.add_argument("--realistic", type=int, default=600, help="objects of the realistic corpus")
    parser.add_argument("--quick", action="store_true", help="three option sets only (none, the export's, all)")
    args = parser.parse_args()
    sys.path.insert(0, str(args.repo.resolve()))
    import lakehouse

    print(f"lakehouse from {Path(lakehouse.__file__).parent}", file=sys.stderr)
    warnings.simplefilter("ignore")  # pydicom's warnings quote values
    rows = digests(args.realistic, args.quick)
    if args.mode == "record":
        args.out.write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in rows))
        print(f"recorded {len(rows)} cases in {args.out}")
        return
    before = {(r["case"], tuple(r["options"])): r for r in map(json.loads, args.against.read_text().splitlines())}
    differing = []
    for row in rows:
        old = before.get((row["case"], tuple(row["options"])))
        if old is None:
            differing.append((row["case"], row["options"], ["not recorded before"]))
            continue
        parts = sorted(k for k in row if k not in ("case", "options") and row[k] != old.get(k))
        if parts:
            differing.append((row["case"], row["options"], parts))
    print(f"{len(rows)} cases compared, {len(differing)} differ")
    for case, options, parts in differing[:40]:
        print(f"  {case} {options}: {', '.join(parts)}")
    sys.exit(1 if differing else 0)


if __name__ == "__main__":
    main()
