"""What a local lake holds for one project, and the invariants every race, kill and purge
test checks against it (and against an uninterrupted run's lake)."""

from __future__ import annotations

import json
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl
from export_testing import TABLES, comparable

from lakehouse.deid import pseudonymize_id


@dataclass
class LakeView:
    tables: dict[str, pl.DataFrame]  # research tables, comparable (no run ids, stable order)
    objects: dict[str, bytes]  # published objects by research key
    lineage: list[dict[str, Any]]  # the project's lineage rows
    quarantine: list[dict[str, Any]]
    staged: list[str]  # files left in research staging or restricted run staging
    temporary: list[str]  # temporary files of writes (.tmp-) anywhere in the writable zones
    runs: list[dict[str, Any]]  # every run's state

    @property
    def sops(self) -> set[str]:
        return set(self.tables["instances"]["SOPInstanceUID"].to_list()) if "instances" in self.tables else set()


def view(root: Path, project: str) -> LakeView:
    tables = {}
    for name in TABLES:
        path = root / "research" / project / "tables" / name
        if (path / "_delta_log").is_dir():
            tables[name] = comparable(pl.read_delta(str(path)))
    base = root / "research" / project / "objects"
    objects = {f"{project}/objects/{p.relative_to(base).as_posix()}": p.read_bytes() for p in base.rglob("*.dcm")}
    staging = root / "research" / project / "_staging"
    staged = [str(p.relative_to(root)) for p in staging.rglob("*") if p.is_file()]
    staged += [str(p.relative_to(root)) for p in (root / "restricted" / "exports").glob("*/staged/**/*") if p.is_file()]
    temporary = [str(p.relative_to(root)) for zone in ("restricted", "research", "datasets")
                 for p in (root / zone).rglob(".tmp-*")]
    runs = [json.loads(p.read_text()) for p in sorted((root / "restricted" / "exports").glob("*/state.json"))]
    return LakeView(
        tables=tables,
        objects=objects,
        lineage=[r for r in _delta_rows(root / "restricted" / "lineage") if r["project"] == project],
        quarantine=_delta_rows(root / "restricted" / "quarantine"),
        staged=staged,
        temporary=temporary,
        runs=runs,
    )


def _delta_rows(path: Path) -> list[dict[str, Any]]:
    return pl.read_delta(str(path)).to_dicts() if (path / "_delta_log").is_dir() else []


def without(baseline: LakeView, patients: AbstractSet[str] = frozenset(), everything: bool = False) -> LakeView:
    """The baseline lake less some patients' outputs (or all of them): what a purge leaves."""
    gone = [r for r in baseline.lineage if everything or r["source_patient_id"] in patients]
    sops = {r["sop_instance_uid"] for r in gone}
    kept = [r for r in baseline.lineage if r not in gone]
    series = {r["series_instance_uid"] for r in gone} - {r["series_instance_uid"] for r in kept}
    studies = {r["study_instance_uid"] for r in gone} - {r["study_instance_uid"] for r in kept}
    by = {"studies": ("StudyInstanceUID", studies), "series": ("SeriesInstanceUID", series),
          "instances": ("SOPInstanceUID", sops), "attributes": ("SOPInstanceUID", sops)}
    tables = {name: df.filter(~pl.col(by[name][0]).is_in(list(by[name][1]))) for name, df in baseline.tables.items()}
    objects = {k: v for k, v in baseline.objects.items() if k not in {r["output_key"] for r in gone}}
    return LakeView(tables, objects, kept, baseline.quarantine, [], [], baseline.runs)


def differences(actual: LakeView, expected: LakeView) -> list[str]:
    """How the lake differs from the expected one (tables, objects, lineage)."""
    found = []
    for name in TABLES:
        have, want = actual.tables.get(name), expected.tables.get(name)
        have_rows = 0 if have is None else have.height
        want_rows = 0 if want is None else want.height
        if have_rows == want_rows == 0:
            continue
        if have is None or want is None or not have.equals(want):
            found.append(f"{name}: {have_rows} rows, expected {want_rows} (or different values)")
    if actual.objects != expected.objects:
        found.append(f"objects: {len(actual.objects)}, expected {len(expected.objects)} (or different bytes)")
    if sorted(r["output_key"] for r in actual.lineage) != sorted(r["output_key"] for r in expected.lineage):
        found.append(f"lineage: {len(actual.lineage)} rows, expected {len(expected.lineage)}")
    return found


def broken_invariants(
    lake: LakeView,
    *,
    key: bytes,
    opted_out: AbstractSet[str] = frozenset(),
    purged_requests: AbstractSet[str] = frozenset(),
    settled: bool = True,
) -> list[str]:
    """Invariants that hold after any crash, race or purge, whatever the expected content.
    ``settled``: no run is left unfinished (so nothing may be left in staging either)."""
    broken = []
    instances = lake.tables.get("instances", pl.DataFrame({"SOPInstanceUID": [], "object_key": []}))
    if instances["SOPInstanceUID"].n_unique() != instances.height:
        broken.append(f"duplicate SOPInstanceUID: {instances.height} rows, {instances['SOPInstanceUID'].n_unique()} UIDs")
    lineage_keys = {r["output_key"] for r in lake.lineage}
    if missing := set(instances["object_key"].to_list()) - lineage_keys:
        broken.append(f"{len(missing)} published rows without lineage")
    if missing := set(lake.objects) - lineage_keys:
        broken.append(f"{len(missing)} published objects without lineage")
    if missing := set(instances["object_key"].to_list()) - set(lake.objects):
        broken.append(f"{len(missing)} instance rows without their object")
    if leaked := [r for r in lake.lineage if r["source_patient_id"] in opted_out]:
        broken.append(f"{len(leaked)} lineage rows of opted-out patients")
    pseudo = {pseudonymize_id(p, key, "patient") for p in opted_out}
    studies = lake.tables.get("studies")
    if studies is not None and studies.filter(pl.col("PatientID").is_in(list(pseudo))).height:
        broken.append("studies of opted-out patients are visible")
    for name, df in lake.tables.items():
        if df.filter(pl.col("request_id").is_in(list(purged_requests))).height:
            broken.append(f"{name}: rows of a purged request are visible")
    if [r for r in lake.lineage if r["request_id"] in purged_requests]:
        broken.append("lineage rows of a purged request remain")
    if settled and lake.staged:
        broken.append(f"{len(lake.staged)} files left in staging, e.g. {lake.staged[0]}")
    if lake.temporary:
        broken.append(f"{len(lake.temporary)} temporary files left, e.g. {lake.temporary[0]}")
    if settled and (active := [r["run_id"] for r in lake.runs if r["status"] in ("planned", "running", "committing")]):
        broken.append(f"unfinished runs: {active}")
    keys = [(q["request_id"], q["source_key"], q["reason"]) for q in lake.quarantine]
    if len(keys) != len(set(keys)):
        broken.append("quarantine rows repeat")
    return broken
