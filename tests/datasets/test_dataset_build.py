"""dataset build / show / pull / withdraw over a real exported project: splits that never move,
leakage refused, pinned sources reproduced, governance and purges reaching datasets."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import deltalake
import nibabel as nib
import polars as pl
import pyarrow as pa
import pytest
from datasets_testing import PROJECT, export_request
from lakehouse_testing import Prepared, set_sections

from lakehouse import datasets, governance, lake
from lakehouse.datasets import layout
from lakehouse.errors import Refused
from lakehouse.workflows import purge_opted_out_patient, revoke_request, verify_audit_trail

ALL = {"formats": ("dicom", "nifti", "png"), "manifests": ("labelstudio", "monai", "nnunet", "ohif")}


def options(name: str, where: str = "Modality = 'CT'", **kw: object) -> datasets.BuildOptions:
    selection = kw.pop("selection", None) or datasets.Selection("sql", where)
    return datasets.BuildOptions(project=PROJECT, name=name, selection=selection, **kw)  # type: ignore[arg-type]


def patients_of(lake_: Prepared) -> list[str]:
    studies = lake.table(lake_.settings, "studies", project=PROJECT).read(columns=["PatientID"])
    return sorted(set(studies.column("PatientID").to_pylist()))


def version_dir(lake_: Prepared, name: str, version: int) -> Path:
    return lake_.root / "datasets" / layout.version_prefix(PROJECT, name, version)


def checksums(folder: Path) -> dict[str, str]:
    lines = (folder / layout.CHECKSUMS).read_text().splitlines()
    return {path: digest for digest, _, path in (line.partition("  ") for line in lines)}


def test_build_writes_a_verified_version_that_other_readers_open(lh: Prepared) -> None:
    result = datasets.build_dataset(lh.settings, options("ct", window="lung", **ALL), user="cora")
    folder = version_dir(lh, "ct", 1)
    assert result.version.status == "published" and result.location.endswith("datasets/lung-ai/ct/v1")
    sums = checksums(folder)
    on_disk = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}
    assert on_disk - set(sums) == {layout.CHECKSUMS, layout.VERSION_FILE}
    for path, digest in sums.items():
        assert hashlib.sha256((folder / path).read_bytes()).hexdigest() == digest
    # Members and splits as a second reader sees them.
    members = pl.read_delta(str(lh.root / "datasets" / PROJECT / "_tables" / "dataset_instances"))
    splits = pl.read_delta(str(lh.root / "datasets" / PROJECT / "_tables" / "dataset_splits"))
    assert members.height == sum(len(m.instances) for m in result.contents.members)
    assert set(members["PatientID"]) == set(splits["PatientID"])
    assert members.group_by("PatientID").agg(pl.col("split").n_unique())["split"].max() == 1
    # Every member's files are where the layout says, in its patient's split.
    split_of = dict(zip(splits["PatientID"], splits["split"], strict=True))
    for member in result.contents.members:
        assert member.split == split_of[member.patient_id]
        for volume in member.nifti:
            image = nib.load(folder / volume.path)
            sidecar = json.loads((folder / volume.sidecar_path).read_text())
            assert image.shape[2] == len(sidecar["slices"]) == len(member.instances)
            assert volume.path.startswith(f"nifti/{member.split}/")
    assert {"train", "val", "test"} >= {m.split for m in result.contents.members}
    version = json.loads((folder / layout.VERSION_FILE).read_text())
    assert version["checksums_sha256"] == hashlib.sha256((folder / layout.CHECKSUMS).read_bytes()).hexdigest()
    assert version["sources"] == {t: 1 for t in ("attributes", "instances", "series", "studies")}
    events = governance.list_audit(lh.settings)
    assert any(e.action == "dataset.build" for e in events)
    assert verify_audit_trail(lh.settings).ok


def test_splits_never_move_as_patients_are_added(lh: Prepared) -> None:
    everyone = patients_of(lh)
    seen: dict[str, str] = {}
    members: dict[int, set[str]] = {}
    for version, count in enumerate((3, 6, len(everyone)), start=1):
        yaml_text = "patients: [" + ", ".join(everyone[:count]) + "]\n"
        result = datasets.build_dataset(
            lh.settings, options("grow", selection=datasets.Selection("yaml", yaml_text)), user="cora")
        assert result.version.version == version
        now = {m.patient_id: m.split for m in result.contents.members}
        members[version] = {m.member_id for m in result.contents.members}
        assert {p: now[p] for p in seen} == seen  # nobody moved
        seen.update(now)
    assert set(seen.values()) == {"train", "val", "test"}
    # Another dataset of the project reuses the same assignment.
    other = datasets.build_dataset(lh.settings, options("other", "TRUE"), user="cora")
    assert {m.patient_id: m.split for m in other.contents.members} == {p: seen[p] for p in {
        m.patient_id for m in other.contents.members}}
    change = datasets.diff(lh.settings, PROJECT, "grow", 1, 3)
    assert change.added == sorted(members[3] - members[1]) and not change.removed and not change.moved


def test_freeze_keeps_new_patients_out_of_test(lh: Prepared) -> None:
    everyone = patients_of(lh)
    first = "patients: [" + ", ".join(everyone[:2]) + "]\n"
    datasets.build_dataset(lh.settings, options("frozen", selection=datasets.Selection("yaml", first)), user="cora")
    result = datasets.build_dataset(
        lh.settings, options("frozen", "TRUE", frozen=("test",), splits={"train": 0.5, "val": 0.2, "test": 0.3}),
        user="cora")
    before = {m.patient_id: m.split for m in result.contents.members if m.patient_id in everyone[:2]}
    newcomers = [m for m in result.contents.members if m.patient_id not in before]
    assert newcomers and all(m.split != "test" for m in newcomers)


def test_stratified_assignment_balances_within_each_value(lh: Prepared) -> None:
    result = datasets.build_dataset(lh.settings, options("strat", "TRUE", stratify=("Modality",),
                                                          splits={"train": 0.5, "test": 0.5}), user="cora")
    rows = pl.read_delta(str(lh.root / "datasets" / PROJECT / "_tables" / "dataset_splits"))
    per = rows.group_by("stratum", "split").len()
    for stratum in per["stratum"].unique():
        counts = per.filter(pl.col("stratum") == stratum)["len"].to_list()
        assert max(counts) - min(counts) <= 1 if len(counts) == 2 else sum(counts) == 1
    assert result.contents.members


def test_a_patient_placed_twice_behind_the_lake_is_refused(lh: Prepared) -> None:
    datasets.build_dataset(lh.settings, options("ct"), user="cora")
    path = str(lh.root / "datasets" / PROJECT / "_tables" / "dataset_splits")
    row = deltalake.DeltaTable(path).to_pyarrow_table().slice(0, 1)
    other = "test" if row["split"][0].as_py() != "test" else "train"
    field = row.schema.get_field_index("split")
    row = row.set_column(field, row.schema.field(field), pa.array([other], row.schema.field(field).type))
    deltalake.write_deltalake(path, row, mode="append")  # an insider writing around the lake
    with pytest.raises(Refused, match=r"leakage: 1 patients fall in more than one split"):
        datasets.build_dataset(lh.settings, options("ct"), user="cora")


def test_as_of_rebuilds_the_same_members_and_bytes(lh: Prepared) -> None:
    from lakehouse.synth import synthesize_archive

    first = datasets.build_dataset(lh.settings, options("pinned", "TRUE", **ALL), user="cora")
    synthesize_archive(lh.root / "archive" / "more", patients=2, seed=99, ct_size=32, ct_slices=8)
    export_request(lh.settings)  # the research tables move on
    pins = {k: int(v) for k, v in first.version.details["sources"].items()}
    again = datasets.build_dataset(lh.settings, options("pinned", "TRUE", pins=pins, **ALL), user="cora")
    latest = datasets.build_dataset(lh.settings, options("pinned", "TRUE", **ALL), user="cora")
    assert [m.member_id for m in again.contents.members] == [m.member_id for m in first.contents.members]
    assert len(latest.contents.members) > len(first.contents.members)
    one, two = checksums(version_dir(lh, "pinned", 1)), checksums(version_dir(lh, "pinned", 2))
    assert one == two
    assert (version_dir(lh, "pinned", 1) / layout.CHECKSUMS).read_bytes() == (
        version_dir(lh, "pinned", 2) / layout.CHECKSUMS).read_bytes()


def test_identical_pixels_in_two_splits_are_refused(lh: Prepared) -> None:
    import pydicom

    # An object copied under another patient in the archive (a real-world duplicate).
    archive = lh.root / "archive"
    source = next(p for p in sorted(archive.rglob("*.dcm")) if pydicom.dcmread(p, stop_before_pixels=True).Modality == "CT")
    datasets.build_dataset(lh.settings, options("before", "TRUE"), user="cora")
    splits = pl.read_delta(str(lh.root / "datasets" / PROJECT / "_tables" / "dataset_splits"))
    assert splits.height >= 2
    ds = pydicom.dcmread(source)
    for n in range(12):  # some of these new patients land in another split than the original's
        ds.PatientID = f"COPY{n:02d}"
        ds.PatientName = f"Copy^{n}"
        ds.StudyInstanceUID = f"1.2.826.0.1.3680043.9.7.1.{n}"
        ds.SeriesInstanceUID = f"1.2.826.0.1.3680043.9.7.2.{n}"
        ds.SOPInstanceUID = f"1.2.826.0.1.3680043.9.7.3.{n}"
        out = archive / "copies" / f"{n}.dcm"
        out.parent.mkdir(exist_ok=True)
        ds.save_as(out)
    export_request(lh.settings)
    with pytest.raises(Refused, match=r"leakage: \d+ identical pixel contents fall in more than one split \(\d+ in \w+ and \w+\)"):
        datasets.build_dataset(lh.settings, options("after", "TRUE"), user="cora")
    failed = datasets.get_version(lh.settings, PROJECT, "after", 1)
    assert failed.status == "failed" and not version_dir(lh, "after", 1).exists()


def test_roles_govern_build_pull_and_withdraw(lh: Prepared, tmp_path: Path) -> None:
    with pytest.raises(Refused, match="curators"):
        datasets.build_dataset(lh.settings, options("ct"), user="leo")
    datasets.build_dataset(lh.settings, options("ct"), user="cora")
    with pytest.raises(Refused, match="labelers or curators"):
        datasets.pull(lh.settings, PROJECT, "ct", None, str(tmp_path / "out"), user="alice")
    with pytest.raises(Refused, match="curators"):
        datasets.withdraw(lh.settings, PROJECT, "ct", 1, user="leo", reason="no")
    assert datasets.pull(lh.settings, PROJECT, "ct", 1, str(tmp_path / "out"), user="leo").files > 0


def test_a_revoked_request_is_not_used(lh: Prepared) -> None:
    revoke_request(lh.settings, lh.request_id, user="bob", reason="consent withdrawn")
    with pytest.raises(Refused, match="no selected series can be used"):
        datasets.build_dataset(lh.settings, options("ct"), user="cora")


def test_optout_purge_withdraws_the_versions_holding_the_patient(lh: Prepared, tmp_path: Path) -> None:
    built = datasets.build_dataset(lh.settings, options("ct", **ALL), user="cora")
    untouched = datasets.build_dataset(lh.settings, options("mr", "Modality = 'MR'"), user="cora")
    member = built.contents.members[0]
    lineage = lake.table(lh.settings, "lineage").read(
        columns=["source_patient_id"], filters=[("pseudo_patient_id", "=", member.patient_id)])
    patient = lineage.column("source_patient_id")[0].as_py()
    purge = purge_opted_out_patient(lh.settings, patient, user="root")
    assert [v.ref for v in purge.withdrawn] == ["ct@v1"] or "mr@v1" in [v.ref for v in purge.withdrawn]
    gone = datasets.get_version(lh.settings, PROJECT, "ct", 1)
    assert gone.status == "withdrawn" and gone.reason == "opt-out purge"
    assert not version_dir(lh, "ct", 1).exists()
    with pytest.raises(Refused, match="withdrawn: opt-out purge"):
        datasets.pull(lh.settings, PROJECT, "ct", 1, str(tmp_path / "out"), user="leo")
    rows = pl.read_delta(str(lh.root / "datasets" / PROJECT / "_tables" / "dataset_instances"))
    assert member.patient_id not in set(rows["PatientID"])
    splits = pl.read_delta(str(lh.root / "datasets" / PROJECT / "_tables" / "dataset_splits"))
    assert member.patient_id not in set(splits["PatientID"])
    mr_patients = {m.patient_id for m in untouched.contents.members}
    if member.patient_id not in mr_patients:
        assert datasets.get_version(lh.settings, PROJECT, "mr", 1).status == "published"
    # The next build no longer holds the patient.
    rebuilt = datasets.build_dataset(lh.settings, options("ct"), user="cora")
    assert member.patient_id not in {m.patient_id for m in rebuilt.contents.members}


def test_revoke_with_purge_withdraws_every_version_of_the_request(lh: Prepared) -> None:
    datasets.build_dataset(lh.settings, options("ct"), user="cora")
    datasets.build_dataset(lh.settings, options("all", "TRUE"), user="cora")
    revocation = revoke_request(lh.settings, lh.request_id, user="root", reason="IRB closed", purge=True)
    assert revocation.purge is not None
    assert sorted(v.ref for v in revocation.purge.withdrawn) == ["all@v1", "ct@v1"]
    assert not (lh.root / "datasets" / PROJECT / "ct").exists() or not any(
        (lh.root / "datasets" / PROJECT / "ct").rglob("*.dcm"))


def test_a_purge_while_a_build_renders_stops_its_publication(lh: Prepared) -> None:
    """A real purge runs while the build is writing files: the version never becomes visible."""
    member_patients = patients_of(lh)
    lineage = lake.table(lh.settings, "lineage").read(
        columns=["source_patient_id"], filters=[("pseudo_patient_id", "=", member_patients[0])])
    patient = lineage.column("source_patient_id")[0].as_py()
    total = lake.table(lh.settings, "instances", project=PROJECT).read(columns=["SOPInstanceUID"]).num_rows
    read: list[int] = []
    purged: list[object] = []

    def advance(n: int) -> None:  # called after each object is read and written: purge after the last
        read.append(n)
        if len(read) == total:
            purged.append(purge_opted_out_patient(lh.settings, patient, user="root"))

    with pytest.raises(Refused, match="no longer in the research zone|not published|withdrawn"):
        datasets.build_dataset(lh.settings, options("racing", "TRUE"), user="cora", advance=advance)
    assert purged
    version = datasets.get_version(lh.settings, PROJECT, "racing", 1)
    assert version.status in ("failed", "withdrawn")
    assert not version_dir(lh, "racing", 1).exists()


def test_selection_reads_only_the_project_tables(lh: Prepared) -> None:
    with pytest.raises(datasets.SelectionError, match="does not run"):
        datasets.build_dataset(lh.settings, options(
            "x", "(SELECT count(*) FROM read_csv('/etc/passwd')) > 0"), user="cora")
    with pytest.raises(datasets.SelectionError, match="does not run"):
        datasets.build_dataset(lh.settings, options("x", "NoSuchColumn = 1"), user="cora")
    with pytest.raises(datasets.SelectionError, match="unknown selection criteria"):
        datasets.build_dataset(lh.settings, options(
            "x", selection=datasets.Selection("yaml", "colour: red\n")), user="cora")
    subquery = ("SeriesInstanceUID IN (SELECT SeriesInstanceUID FROM attributes "
                "WHERE keyword = 'SliceThickness')")
    result = datasets.build_dataset(lh.settings, options("sub", subquery), user="cora")
    assert result.contents.members


def test_exclusions_are_listed_not_dropped(lh: Prepared) -> None:
    result = datasets.build_dataset(lh.settings, options("mixed", "TRUE", formats=("nifti",)), user="cora")
    excluded = {e.series_instance_uid for e in result.contents.exclusions if e.format == "nifti"}
    members = {m.member_id for m in result.contents.members}
    assert excluded  # the synthetic archive holds single-object and non-volume series
    series = lake.table(lh.settings, "series", project=PROJECT).read(columns=["SeriesInstanceUID"])
    assert set(series.column("SeriesInstanceUID").to_pylist()) == members | excluded
    shown = datasets.get_version(lh.settings, PROJECT, "mixed", 1).details["exclusions"]
    assert all(e["code"] and e["reason"] for e in shown)


def test_pull_to_s3(lh: Prepared, s3_server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    set_sections(lh.config, s3={"endpoint_url": s3_server.endpoint_url, "access_key_id": "test",
                               "secret_access_key": "test", "allow_http": True})
    bucket = s3_server.new_bucket("pull")
    datasets.build_dataset(lh.settings, options("ct", formats=("dicom", "png")), user="cora")
    result = datasets.pull(lh.settings, PROJECT, "ct", None, f"s3://{bucket}/team-a", user="leo", split="train")
    listed = s3_server.client().list_objects_v2(Bucket=bucket, Prefix="team-a/")["Contents"]
    keys = {o["Key"].removeprefix("team-a/") for o in listed}
    assert len(keys) == result.files + 2 and layout.CHECKSUMS in keys
    assert all(k.split("/")[1] == "train" for k in keys if k.startswith(("dicom/", "png/")))
    body = s3_server.client().get_object(Bucket=bucket, Key=f"team-a/{layout.CHECKSUMS}")["Body"].read()
    for line in body.decode().splitlines():
        digest, _, path = line.partition("  ")
        data = s3_server.client().get_object(Bucket=bucket, Key=f"team-a/{path}")["Body"].read()
        assert hashlib.sha256(data).hexdigest() == digest


def test_a_tampered_file_stops_the_pull(lh: Prepared, tmp_path: Path) -> None:
    datasets.build_dataset(lh.settings, options("ct"), user="cora")
    victim = next(version_dir(lh, "ct", 1).rglob("*.dcm"))
    victim.write_bytes(victim.read_bytes() + b"x")
    with pytest.raises(Refused, match="differs from its checksum"):
        datasets.pull(lh.settings, PROJECT, "ct", 1, str(tmp_path / "out"), user="leo")
    (version_dir(lh, "ct", 1) / layout.CHECKSUMS).write_text("")
    with pytest.raises(Refused, match="differs from the one recorded"):
        datasets.pull(lh.settings, PROJECT, "ct", 1, str(tmp_path / "out2"), user="leo")


def test_png_frames_read_back(lh: Prepared) -> None:
    from PIL import Image

    result = datasets.build_dataset(lh.settings, options("png", formats=("png",), window="400/40"), user="cora")
    image = result.contents.members[0].png[0]
    with Image.open(io.BytesIO((version_dir(lh, "png", 1) / image.path).read_bytes())) as png:
        assert png.size == (image.columns, image.rows)
    assert (image.window_center, image.window_width) == (40.0, 400.0)


def test_study_members_keep_their_series_together(lh: Prepared) -> None:
    result = datasets.build_dataset(lh.settings, options("studies", "TRUE", unit="study"), user="cora")
    studies = lake.table(lh.settings, "studies", project=PROJECT).read(columns=["StudyInstanceUID"])
    member_ids = {m.member_id for m in result.contents.members}
    assert member_ids <= set(studies.column("StudyInstanceUID").to_pylist())
    for member in result.contents.members:
        assert {i.study_instance_uid for i in member.instances} == {member.member_id}
    rows = pl.read_delta(str(lh.root / "datasets" / PROJECT / "_tables" / "dataset_instances"))
    assert rows.group_by("StudyInstanceUID").agg(pl.col("member_id").n_unique())["member_id"].max() == 1
