"""Labels back into the lake (issue 13): a label map drawn on a dataset's NIfTI comes back as a
DICOM SEG tied to the source slices, voxel for voxel; what does not fit the geometry is refused;
finals supersede; agreement between annotators; purges and withdrawals reach annotations."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
from datasets_testing import PROJECT
from lakehouse_testing import Prepared

from lakehouse import datasets, lake
from lakehouse.datasets import layout
from lakehouse.errors import Refused
from lakehouse.workflows import import_annotations, purge_opted_out_patient

LABELS = """\
segments:
  - number: 1
    label: nodule
    category: {value: "49755003", scheme: SCT, meaning: Morphologically abnormal structure}
    type: {value: "27925004", scheme: SCT, meaning: Nodule}
"""


def build_ct(lh: Prepared, name: str = "ct") -> datasets.BuildResult:
    return datasets.build_dataset(lh.settings, datasets.BuildOptions(
        project=PROJECT, name=name, selection=datasets.Selection("sql", "Modality = 'CT'"),
        formats=("dicom", "nifti"), manifests=("nnunet",)), user="cora")


def label_maps(lh: Prepared, built: datasets.BuildResult, out: Path, *, threshold: float = 0.0,
               flip: bool = False) -> dict[str, np.ndarray]:
    """One label map per NIfTI of the version, drawn on the image itself (voxels above a threshold)."""
    folder = lh.root / "datasets" / layout.version_prefix(PROJECT, built.version.name, built.version.version)
    out.mkdir(parents=True, exist_ok=True)
    drawn = {}
    for member in built.contents.members:
        for volume in member.nifti:
            image = nib.load(folder / volume.path)
            labels = (np.asarray(image.dataobj) > threshold).astype(np.uint8)
            labels[0, 0, 0] = 1  # never empty
            affine = image.affine
            if flip:  # the same labels stored along a reversed first axis, its affine saying so
                labels_on_disk = labels[::-1]
                affine = image.affine @ np.array([[-1, 0, 0, labels.shape[0] - 1], [0, 1, 0, 0], [0, 0, 1, 0],
                                                  [0, 0, 0, 1]], dtype=float)
            else:
                labels_on_disk = labels
            nib.save(nib.Nifti1Image(labels_on_disk, affine), out / f"{layout.case_id(volume.series_instance_uid)}.nii.gz")
            drawn[volume.series_instance_uid] = labels
    return drawn


def test_label_maps_round_trip_through_seg(lh: Prepared, tmp_path: Path) -> None:
    built = build_ct(lh)
    drawn = label_maps(lh, built, tmp_path / "maps")
    (tmp_path / "labels.yaml").write_text(LABELS)
    result = import_annotations(lh.settings, PROJECT, "ct", 1, tmp_path / "maps", kind="nifti", user="leo",
                                label_map_text=LABELS, annotator="Dr Annie Label")
    assert len(result.imported) == len(drawn) and not result.refused
    rows = datasets.list_annotations(lh.settings, PROJECT, "ct", 1)
    assert {r["SeriesInstanceUID"] for r in rows} == set(drawn)
    assert all(r["annotator_id"].startswith("ann-") and "Annie" not in r["annotator_id"] for r in rows)
    assert all(r["segments"][0]["label"] == "nodule" and r["segments"][0]["voxels"] > 0 for r in rows)
    # Every SEG frame references a source slice of its series; the mask comes back voxel for voxel.
    sops = lake.table(lh.settings, "instances", project=PROJECT).read(columns=["SOPInstanceUID", "SeriesInstanceUID"])
    series_of = dict(zip(sops["SOPInstanceUID"].to_pylist(), sops["SeriesInstanceUID"].to_pylist(), strict=True))
    for row in rows:
        seg = pydicom.dcmread(lh.root / "research" / row["seg_object_key"])
        assert seg.Modality == "SEG" and seg.PatientID == row["PatientID"]
        for frame in seg.PerFrameFunctionalGroupsSequence:
            source = frame.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID
            assert series_of[source] == row["SeriesInstanceUID"]
        assert b"Annie" not in (lh.root / "research" / row["seg_object_key"]).read_bytes()
    out = tmp_path / "back"
    files = datasets.export_annotations(lh.settings, PROJECT, "ct", 1, as_="nifti", to=out, user="leo")
    assert len(files) == len(drawn)
    by_case = {layout.case_id(uid): labels for uid, labels in drawn.items()}
    for name in files:
        back = nib.load(out / name)
        np.testing.assert_array_equal(np.asarray(back.dataobj), by_case[name.split("_")[0]])
    if shutil.which("dciodvfy"):
        for name in datasets.export_annotations(lh.settings, PROJECT, "ct", 1, as_="seg", to=tmp_path / "segs", user="leo"):
            check = subprocess.run(["dciodvfy", str(tmp_path / "segs" / name)], capture_output=True, text=True, check=False)
            assert "Error" not in check.stderr, check.stderr[:500]
    # The same labels again change nothing.
    again = import_annotations(lh.settings, PROJECT, "ct", 1, tmp_path / "maps", kind="nifti", user="leo",
                               label_map_text=LABELS, annotator="Dr Annie Label")
    assert {r["annotation_id"] for r in again.imported} == {r["annotation_id"] for r in rows}
    assert len(datasets.list_annotations(lh.settings, PROJECT, "ct", 1)) == len(rows)


def test_maps_that_do_not_fit_are_refused_with_the_mismatch(lh: Prepared, tmp_path: Path) -> None:
    built = build_ct(lh)
    label_maps(lh, built, tmp_path / "flipped", flip=True)
    shifted = tmp_path / "shifted"
    drawn = label_maps(lh, built, shifted)
    for path in shifted.iterdir():
        image = nib.load(path)
        moved = image.affine.copy()
        moved[:3, 3] += 5.0
        nib.save(nib.Nifti1Image(np.asarray(image.dataobj), moved), path)
    for folder in (tmp_path / "flipped", shifted):
        result = import_annotations(lh.settings, PROJECT, "ct", 1, folder, kind="nifti", user="leo")
        assert not result.imported and len(result.refused) == len(drawn)
        assert {r["code"] for r in result.refused} <= {"direction_mismatch", "origin_mismatch", "shape_mismatch"}
    (tmp_path / "stray").mkdir()
    nib.save(nib.Nifti1Image(np.zeros((2, 2, 2), np.uint8), np.eye(4)), tmp_path / "stray" / "cnotacase.nii.gz")
    stray = import_annotations(lh.settings, PROJECT, "ct", 1, tmp_path / "stray", kind="nifti", user="leo")
    assert [r["code"] for r in stray.refused] == ["unknown_case"]


def test_finals_supersede_and_agreement_compares_annotators(lh: Prepared, tmp_path: Path) -> None:
    built = build_ct(lh)
    label_maps(lh, built, tmp_path / "a", threshold=0.0)
    label_maps(lh, built, tmp_path / "b", threshold=50.0)
    first = import_annotations(lh.settings, PROJECT, "ct", 1, tmp_path / "a", kind="nifti", user="leo",
                               label_map_text=LABELS, annotator="reader one", status="draft")
    second = import_annotations(lh.settings, PROJECT, "ct", 1, tmp_path / "b", kind="nifti", user="leo",
                                label_map_text=LABELS, annotator="reader two")
    table = datasets.annotation_agreement(lh.settings, PROJECT, "ct", 1)
    assert len(table) == len(first.imported)
    assert all(0.0 <= row["dice"] <= 1.0 for row in table)
    third = import_annotations(lh.settings, PROJECT, "ct", 1, tmp_path / "a", kind="nifti", user="leo",
                               label_map_text=LABELS, annotator="reader two", round_="r2")
    status = {r["annotation_id"]: r["status"] for r in datasets.list_annotations(lh.settings, PROJECT, "ct", 1)}
    assert {status[r["annotation_id"]] for r in second.imported} == {"superseded"}
    assert {status[r["annotation_id"]] for r in third.imported} == {"final"}
    assert all(r["supersedes"] for r in third.imported)


def test_withdrawn_versions_refuse_imports_and_purges_remove_annotations(lh: Prepared, tmp_path: Path) -> None:
    built = build_ct(lh)
    label_maps(lh, built, tmp_path / "maps")
    import_annotations(lh.settings, PROJECT, "ct", 1, tmp_path / "maps", kind="nifti", user="leo")
    with pytest.raises(Refused, match="labelers or curators"):
        import_annotations(lh.settings, PROJECT, "ct", 1, tmp_path / "maps", kind="nifti", user="alice")
    rows = datasets.list_annotations(lh.settings, PROJECT, "ct", 1)
    target = rows[0]
    lineage = lake.table(lh.settings, "lineage").read(
        columns=["source_patient_id"], filters=[("pseudo_patient_id", "=", target["PatientID"])])
    purge_opted_out_patient(lh.settings, lineage.column("source_patient_id")[0].as_py(), user="root")
    left = datasets.list_annotations(lh.settings, PROJECT, "ct", 1)
    assert target["PatientID"] not in {r["PatientID"] for r in left}
    assert not (lh.root / "research" / target["seg_object_key"]).exists()
    with pytest.raises(Refused, match="withdrawn"):
        import_annotations(lh.settings, PROJECT, "ct", 1, tmp_path / "maps", kind="nifti", user="leo")
    assert json.dumps(left, default=str).count(target["PatientID"]) == 0


def test_a_new_version_carries_the_final_labels(lh: Prepared, tmp_path: Path) -> None:
    built = build_ct(lh)
    drawn = label_maps(lh, built, tmp_path / "maps")
    import_annotations(lh.settings, PROJECT, "ct", 1, tmp_path / "maps", kind="nifti", user="leo", label_map_text=LABELS)
    labeled = datasets.build_dataset(lh.settings, datasets.BuildOptions(
        project=PROJECT, name="ct", selection=datasets.Selection("sql", "Modality = 'CT'"), labels="final",
        formats=("dicom", "nifti"), manifests=("monai", "nnunet")), user="cora")
    folder = lh.root / "datasets" / layout.version_prefix(PROJECT, "ct", labeled.version.version)
    volumes = [n for m in labeled.contents.members for n in m.nifti]
    assert volumes and all(n.label_path for n in volumes)
    for volume in volumes:
        np.testing.assert_array_equal(np.asarray(nib.load(folder / volume.label_path).dataobj),
                                      drawn[volume.series_instance_uid])
    monai = json.loads((folder / "manifests/monai_datalist.json").read_text())
    entries = [e for key in ("training", "validation", "test") for e in monai.get(key, [])]
    assert all((folder / "manifests" / e["label"]).resolve().is_file() for e in entries)
    nnunet = json.loads((folder / "manifests/nnunet/dataset.json").read_text())
    assert nnunet["labels"] == {"background": 0, "nodule": 1}
    segs = [p for p in folder.rglob("*.dcm") if pydicom.dcmread(p, stop_before_pixels=True).Modality == "SEG"]
    assert len(segs) == len(volumes)


def test_a_seg_from_another_tool_comes_in_under_a_pseudonymous_annotator(lh: Prepared, tmp_path: Path) -> None:
    built = build_ct(lh)
    label_maps(lh, built, tmp_path / "maps")
    import_annotations(lh.settings, PROJECT, "ct", 1, tmp_path / "maps", kind="nifti", user="leo", label_map_text=LABELS)
    exported = datasets.export_annotations(lh.settings, PROJECT, "ct", 1, as_="seg", to=tmp_path / "segs", user="leo")
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    for n, name in enumerate(exported):  # as another tool would write them: its own UIDs, a named creator
        seg = pydicom.dcmread(tmp_path / "segs" / name)
        seg.ContentCreatorName = "Doe^Jane"
        seg.SeriesInstanceUID = f"1.2.826.0.1.3680043.9.9.1.{n}"
        seg.SOPInstanceUID = seg.file_meta.MediaStorageSOPInstanceUID = f"1.2.826.0.1.3680043.9.9.2.{n}"
        seg.save_as(foreign / name)
    result = import_annotations(lh.settings, PROJECT, "ct", 1, foreign, kind="seg", user="leo")
    assert len(result.imported) == len(exported) and not result.refused
    rows = {r["annotation_id"]: r for r in datasets.list_annotations(lh.settings, PROJECT, "ct", 1)}
    for imported in result.imported:
        row = rows[imported["annotation_id"]]
        assert row["tool"] == "seg" and row["annotator_id"].startswith("ann-")
        assert row["segments"][0]["label"] == "nodule"
        stored = (lh.root / "research" / row["seg_object_key"]).read_bytes()
        assert b"Doe" not in stored and b"1.2.826.0.1.3680043.9.9." not in stored
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "x.dcm").write_bytes(b"not dicom")
    junk = import_annotations(lh.settings, PROJECT, "ct", 1, tmp_path / "junk", kind="seg", user="leo")
    assert [r["code"] for r in junk.refused] == ["not_a_seg"]


def test_revoke_with_purge_removes_the_request_annotations(lh: Prepared, tmp_path: Path) -> None:
    from lakehouse.workflows import revoke_request

    built = build_ct(lh)
    label_maps(lh, built, tmp_path / "maps")
    import_annotations(lh.settings, PROJECT, "ct", 1, tmp_path / "maps", kind="nifti", user="leo")
    keys = [r["seg_object_key"] for r in datasets.list_annotations(lh.settings, PROJECT, "ct", 1)]
    revoke_request(lh.settings, lh.request_id, user="root", reason="IRB closed", purge=True)
    assert datasets.list_annotations(lh.settings, PROJECT, "ct", 1) == []
    assert not any((lh.root / "research" / key).exists() for key in keys)


def test_label_studio_rectangles_and_polygons_come_back_on_their_slices(lh: Prepared, tmp_path: Path) -> None:
    built = datasets.build_dataset(lh.settings, datasets.BuildOptions(
        project=PROJECT, name="ls", selection=datasets.Selection("sql", "Modality = 'CT'"),
        formats=("png",), manifests=("labelstudio",)), user="cora")
    folder = lh.root / "datasets" / layout.version_prefix(PROJECT, "ls", 1)
    tasks = json.loads((folder / "manifests/labelstudio_tasks.json").read_text())
    first, second = tasks[0], tasks[1]
    png = {p.sop_instance_uid: p for m in built.contents.members for p in m.png}[first["meta"]["sop_instance_uid"]]
    size = {"original_width": png.columns, "original_height": png.rows}
    export = [
        {"id": 1, "data": first["data"], "annotations": [{"completed_by": {"email": "jane.doe@example.org"}, "result": [
            {"id": "a", "type": "rectanglelabels", "from_name": "label", "to_name": "image", **size,
             "value": {"x": 25, "y": 25, "width": 50, "height": 50, "rotation": 0, "rectanglelabels": ["nodule"]}}]}]},
        {"id": 2, "data": second["data"], "annotations": [{"completed_by": {"email": "jane.doe@example.org"}, "result": [
            {"id": "b", "type": "polygonlabels", "from_name": "label", "to_name": "image", **size,
             "value": {"points": [[0, 0], [100, 0], [0, 100]], "closed": True, "polygonlabels": ["nodule"]}}]}]},
    ]
    (tmp_path / "export.json").write_text(json.dumps(export))
    result = import_annotations(lh.settings, PROJECT, "ls", 1, tmp_path / "export.json", kind="labelstudio",
                                user="leo", label_map_text=LABELS)
    assert result.imported and not result.refused
    rows = datasets.list_annotations(lh.settings, PROJECT, "ls", 1)
    voxels = sum(s["voxels"] for r in rows for s in r["segments"])
    square = (png.columns // 2) * (png.rows // 2)
    assert square < voxels < square + png.columns * png.rows  # the square plus about half of the second slice
    for row in rows:
        assert b"jane" not in (lh.root / "research" / row["seg_object_key"]).read_bytes().lower()
        seg = pydicom.dcmread(lh.root / "research" / row["seg_object_key"])
        referenced = {f.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID
                      for f in seg.PerFrameFunctionalGroupsSequence}
        assert referenced <= {first["meta"]["sop_instance_uid"], second["meta"]["sop_instance_uid"]}
    stranger = [{"id": 9, "data": {"image": "/data/local-files/?d=png/train/elsewhere.png"}, "annotations": []}]
    (tmp_path / "stranger.json").write_text(json.dumps(stranger))
    with pytest.raises(Refused, match="not in this dataset version"):
        import_annotations(lh.settings, PROJECT, "ls", 1, tmp_path / "stranger.json", kind="labelstudio", user="leo")
