"""`lakehouse dataset` as a user runs it (real processes), and the datasets zone checked for
identifiers the way the research zone is."""

from __future__ import annotations

import json
from pathlib import Path

from datasets_testing import PROJECT
from lakehouse_testing import Prepared, lakehouse_cli, reason_lines

from lakehouse import lake


def run_json(lh: Prepared, *args: str) -> dict:
    done = lakehouse_cli(lh.config, *args, "--json")
    assert done.returncode == 0, reason_lines(done.stderr)
    return json.loads(done.stdout)


def test_build_list_show_pull_withdraw(lh: Prepared, tmp_path: Path) -> None:
    selection = tmp_path / "ct.yaml"
    selection.write_text("modalities: [CT]\nmin_instances: 2\n")
    built = run_json(lh, "dataset", "build", "ct", "--project", PROJECT, "--selection", str(selection),
                     "--format", "dicom,nifti,png", "--manifest", "monai,nnunet,labelstudio,ohif",
                     "--window", "mediastinum", "--stratify", "Modality", "--user", "cora")
    assert built["status"] == "published" and built["version"] == 1 and built["counts"]["members"] > 0
    again = run_json(lh, "dataset", "build", "ct", "--project", PROJECT, "--selection", str(selection),
                     "--as-of", "v1", "--user", "cora")
    assert again["sources"] == built["sources"] and again["version"] == 2
    listed = run_json(lh, "dataset", "list")["datasets"]
    assert [(d["name"], d["version"], d["status"]) for d in listed] == [("ct", 1, "published"), ("ct", 2, "published")]
    shown = run_json(lh, "dataset", "show", "ct@v1")
    assert shown["selection"]["kind"] == "yaml" and shown["options"]["stratify"] == ["Modality"]
    diff = run_json(lh, "dataset", "show", "ct@v2", "--diff", "v1")
    assert diff == {"from": 1, "to": 2, "added": [], "removed": [], "moved": []}
    pulled = run_json(lh, "dataset", "pull", "ct@v1", "--to", str(tmp_path / "out"), "--split", "train",
                      "--format", "nifti", "--user", "leo")
    assert pulled["files"] == len((tmp_path / "out" / "checksums.sha256").read_text().splitlines())
    assert {p.name for p in (tmp_path / "out").iterdir()} >= {"nifti", "manifests", "croissant.json", "DATASHEET.md"}
    withdrawn = run_json(lh, "dataset", "withdraw", "ct@v1", "--reason", "wrong window", "--user", "cora")
    assert withdrawn["status"] == "withdrawn"
    refused = lakehouse_cli(lh.config, "dataset", "pull", "ct@v1", "--to", str(tmp_path / "again"), "--user", "leo")
    assert refused.returncode != 0
    assert reason_lines(refused.stderr) == ["lakehouse: dataset ct@v1 is withdrawn: wrong window; nothing pulled"]
    denied = lakehouse_cli(lh.config, "dataset", "build", "x", "--project", PROJECT, "--where", "TRUE", "--user", "leo")
    assert denied.returncode != 0 and "curators" in reason_lines(denied.stderr)[0]
    bad = lakehouse_cli(lh.config, "dataset", "build", "x", "--project", PROJECT, "--where", "TRUE",
                        "--manifest", "monai", "--user", "cora")
    assert reason_lines(bad.stderr) == ["lakehouse: the monai manifest needs --format nifti"]


def test_optout_purge_on_the_command_line_reports_withdrawn_versions(lh: Prepared) -> None:
    built = run_json(lh, "dataset", "build", "all", "--project", PROJECT, "--where", "TRUE", "--user", "cora")
    patient = lake.table(lh.settings, "catalog").read().column("patient_id")[0].as_py()
    purged = run_json(lh, "optout", "purge", "--patient-id", patient, "--reason", "letter 12", "--user", "root")
    assert purged["datasets_withdrawn"] == [f"{PROJECT}/all@v{built['version']}"]
    assert patient not in json.dumps(purged)


def test_nothing_identified_reaches_the_datasets_zone(lh: Prepared) -> None:
    run_json(lh, "dataset", "build", "everything", "--project", PROJECT, "--where", "TRUE",
             "--format", "dicom,nifti,png", "--manifest", "labelstudio,monai,nnunet,ohif", "--user", "cora")
    values: set[str] = set()
    for row in lake.table(lh.settings, "catalog").read().to_pylist():
        for column in ("patient_id", "accession_number", "study_instance_uid", "series_instance_uid", "sop_instance_uid"):
            if row[column]:
                values.add(row[column])
        values.update((row["patient_name"] or "").replace("^", " ").split())
    needles = [v.encode() for v in values if len(v) >= 5]
    files = [p for p in (lh.root / "datasets").rglob("*") if p.is_file()]
    assert {p.suffix for p in files} >= {".dcm", ".gz", ".png", ".json", ".md", ".parquet"}
    for path in files:
        data = path.read_bytes()
        leaked = [n for n in needles if n in data]
        assert not leaked, f"{len(leaked)} source identifiers in {path.relative_to(lh.root)}"


def test_annotations_on_the_command_line(lh: Prepared, tmp_path: Path) -> None:
    import nibabel as nib
    import numpy as np

    built = run_json(lh, "dataset", "build", "ct", "--project", PROJECT, "--where", "Modality = 'CT'",
                     "--format", "nifti", "--user", "cora")
    folder = lh.root / "datasets" / PROJECT / "ct" / f"v{built['version']}"
    maps = tmp_path / "maps"
    maps.mkdir()
    for image_path in sorted((folder / "nifti").rglob("*_0000.nii.gz"))[:2]:
        image = nib.load(image_path)
        labels = (np.asarray(image.dataobj) > 0).astype(np.uint8)
        labels[0, 0, 0] = 2
        nib.save(nib.Nifti1Image(labels, image.affine), maps / image_path.name.replace("_0000", ""))
    imported = run_json(lh, "dataset", "annotations", "import", "ct@v1", "--from", str(maps), "--kind", "nifti",
                        "--annotator", "Reader One", "--user", "leo")
    assert len(imported["imported"]) == 2 and imported["refused"] == []
    listed = run_json(lh, "dataset", "annotations", "list", "ct")["annotations"]
    assert [len(r["segments"]) for r in listed] == [2, 2]
    assert {s["label"] for r in listed for s in r["segments"]} == {"label 1", "label 2"}
    out = run_json(lh, "dataset", "annotations", "export", "ct@v1", "--as", "nifti", "--to", str(tmp_path / "out"),
                   "--user", "leo")
    assert len(out["files"]) == 2
    assert run_json(lh, "dataset", "annotations", "agreement", "ct@v1") == {"agreement": []}
    refused = lakehouse_cli(lh.config, "dataset", "annotations", "import", "ct", "--from", str(maps), "--kind", "nifti",
                            "--user", "leo")
    assert reason_lines(refused.stderr) == ["lakehouse: ct: this command takes NAME@vN"]
