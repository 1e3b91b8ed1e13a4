"""Manifests from a hand-built version: each one read the way its tool reads it.

MONAI and nnU-Net need torch, too heavy for the test environment: their manifests are checked
against the documented structure (MONAI's ``load_decathlon_datalist`` path rules, nnU-Net v2's
``dataset.json`` keys and ``splits_final.json`` folds). Label Studio: the structure and its Local
Storage path rule here; with ``label-studio-sdk`` installed, its own resolver and labeling-config
check as well (it pins an older numpy, so it is not in the ``test`` extra).
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest
from pydicom import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian

from lakehouse.datasets import layout
from lakehouse.datasets.manifests import LOCAL_FILES_URL, build_manifests, naturalize
from lakehouse.datasets.model import (
    Exclusion,
    Instance,
    Member,
    NiftiFile,
    PngImage,
    SourceRequest,
    VersionContents,
)
from lakehouse.dicom.json import to_json

PRIVATE_TEXT = "PRIVATE-CREATOR-TEXT"
SELECTION = "SELECT series_instance_uid FROM series WHERE modality IN ('CT', 'MR') -- SELECTION-SENTINEL"


def uid(n: int) -> str:
    return f"2.25.{1000 + n}"


def header(study: str, series: str, sop: str, patient: str, number: int, modality: str) -> Dataset:
    """A de-identified header as the research path leaves it (plus a private tag and pixels,
    which a manifest must never carry)."""
    ds = Dataset()
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = sop
    ds.StudyInstanceUID = study
    ds.SeriesInstanceUID = series
    ds.PatientID = patient
    ds.PatientName = patient
    ds.PatientSex = "O"
    ds.StudyDate = "20200102"
    ds.Modality = modality
    ds.SeriesNumber = 3
    ds.InstanceNumber = number
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.Rows = ds.Columns = 4
    ds.BitsAllocated = ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 1
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.PixelSpacing = [0.5, 0.5]
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.ImagePositionPatient = [0, 0, float(number)]
    ds.WindowCenter = 40
    ds.WindowWidth = 400
    item = Dataset()
    item.CodeValue = "T-D3000"
    item.CodingSchemeDesignator = "SRT"
    item.CodeMeaning = "Chest"
    ds.AnatomicRegionSequence = Sequence([item])
    block = ds.private_block(0x0011, "ACME", create=True)
    block.add_new(0x01, "LO", PRIVATE_TEXT)
    ds.PixelData = bytes(32)
    ds["PixelData"].VR = "OW"
    ds.file_meta = Dataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    return ds


def make_member(
    n: int,
    patient: str,
    split: str,
    modality: str,
    *,
    slices: int = 2,
    frames: int = 1,
    body_part: str = "CHEST",
) -> Member:
    study, series = uid(100 + n), uid(200 + n)
    instances, pngs = [], []
    for k in range(slices, 0, -1):  # reversed: manifests order by InstanceNumber, not by input
        sop = uid(300 + 10 * n + k)
        instances.append(
            Instance(
                sop_instance_uid=sop,
                series_instance_uid=series,
                study_instance_uid=study,
                sop_class_uid=CTImageStorage,
                modality=modality,
                instance_number=k,
                header_json=to_json(header(study, series, sop, patient, k, modality)),
                object_sha256=f"{n:02d}{k:062d}",
                pixel_sha256=f"{k:02d}{n:062d}",
                dicom_path=layout.dicom_path(split, patient, study, series, sop),
            )
        )
        for frame in range(frames):
            pngs.append(
                PngImage(
                    path=layout.png_path(split, patient, series, sop, frame, frames),
                    sop_instance_uid=sop,
                    series_instance_uid=series,
                    frame=frame,
                    bits=8,
                    window_center=-600.0,
                    window_width=1500.0,
                    rows=4,
                    columns=4,
                )
            )
    nifti = NiftiFile(
        series_instance_uid=series,
        path=layout.nifti_path(split, series),
        sidecar_path=layout.nifti_sidecar_path(split, series),
        shape=(4, 4, slices),
    )
    return Member(
        member_id=series,
        patient_id=patient,
        study_instance_uid=study,
        split=split,
        modality=modality,
        body_part=body_part,
        manufacturer="ACME Medical" if n % 2 else "Other | Vendor",
        instances=tuple(instances),
        nifti=(nifti,),
        png=tuple(pngs),
    )


def sample_contents(**changes: Any) -> VersionContents:
    """Three splits plus an extra "holdout" split, two modalities, a multi-frame member."""
    members = (
        make_member(1, "P0001", "train", "CT"),
        make_member(2, "P0001", "train", "CT", slices=3),
        make_member(3, "P0002", "val", "MR", body_part="HEAD"),
        make_member(4, "P0003", "test", "CT", frames=2, slices=1),
        make_member(5, "P0004", "train", "CT"),
        make_member(6, "P0005", "holdout", "CT"),
    )
    contents = VersionContents(
        project="lungs",
        name="nodules",
        unit="series",
        splits={"train": 0.7, "val": 0.15, "test": 0.15},
        formats=("dicom", "nifti", "png"),
        manifests=("labelstudio", "monai", "nnunet", "ohif"),
        window="lung",
        selection_kind="sql",
        selection_text=SELECTION,
        selection_sha256="ab" * 32,
        sources={"series": 7, "instances": 9, "studies": 7},
        requests=(
            SourceRequest(
                "req-0002", "PROT-9", "nodule detection | v2", "basic", ("retain-uids", "clean-pixels")
            ),
            SourceRequest("req-0001", "PROT-1", "nodule detection", "basic", ()),
        ),
        members=members,
        exclusions=(
            Exclusion(uid(209), uid(209), "nifti", "gantry_tilt", "slices are tilted 12 degrees"),
            Exclusion(uid(210), None, "member", "not_an_image", "a single structured report"),
        ),
        stratify=("modality",),
        frozen=("test",),
        tool={"name": "lakehouse", "version": "0.12.0"},
    )
    return dataclasses.replace(contents, **changes)


def write_files(root: Path, contents: VersionContents) -> None:
    """Empty files at every path the contents name, plus the manifests, as a pulled version."""
    for member in contents.members:
        paths = [i.dicom_path for i in member.instances if i.dicom_path]
        paths += [p.path for p in member.png] + [n.path for n in member.nifti]
        paths += [n.sidecar_path for n in member.nifti]
        for path in paths:
            (root / path).parent.mkdir(parents=True, exist_ok=True)
            (root / path).write_bytes(b"")
    for path, data in build_manifests(contents).items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_bytes(data)


def manifest(contents: VersionContents, path: str) -> Any:
    return json.loads(build_manifests(contents)[path])


def strings(value: Any) -> set[str]:
    if isinstance(value, str):
        return {value}
    if isinstance(value, dict):
        return set().union(*(strings(v) | ({k} if isinstance(k, str) else set()) for k, v in value.items()))
    if isinstance(value, list):
        return set().union(*map(strings, value))
    return set()


def test_builds_exactly_the_requested_manifests_at_their_layout_paths() -> None:
    assert set(build_manifests(sample_contents())) == {p for ps in layout.MANIFEST_FILES.values() for p in ps}
    assert set(build_manifests(sample_contents(manifests=("monai",)))) == {"manifests/monai_datalist.json"}
    assert build_manifests(sample_contents(manifests=())) == {}


@pytest.mark.parametrize(
    ("kind", "missing"), [("ohif", "dicom"), ("monai", "nifti"), ("nnunet", "nifti"), ("labelstudio", "png")]
)
def test_refuses_a_manifest_without_its_format(kind: str, missing: str) -> None:
    formats = tuple(f for f in ("dicom", "nifti", "png") if f != missing)
    with pytest.raises(ValueError, match=missing):
        build_manifests(sample_contents(formats=formats, manifests=(kind,)))


def test_refuses_an_unknown_manifest() -> None:
    with pytest.raises(ValueError, match="unknown manifest"):
        build_manifests(sample_contents(manifests=("coco",)))


def test_label_studio_tasks_point_at_every_png_through_local_storage(tmp_path: Path) -> None:
    contents = sample_contents()
    write_files(tmp_path, contents)
    tasks = manifest(contents, "manifests/labelstudio_tasks.json")
    pngs = {p.path: (m, p) for m in contents.members for p in m.png}
    assert len(tasks) == len(pngs) == 13
    seen = []
    for task in tasks:
        assert set(task) == {"data", "meta"}
        url = task["data"]["image"]
        assert url.startswith(LOCAL_FILES_URL)
        # Label Studio's /data/local-files/ view: the decoded "d" value, relative to the document root
        path = parse_qs(urlparse(url).query)["d"][-1]
        assert (tmp_path / path).is_file()
        member, png = pngs[path]
        assert task["meta"] == {
            "split": member.split,
            "case": layout.case_id(member.member_id),
            "series_instance_uid": png.series_instance_uid,
            "sop_instance_uid": png.sop_instance_uid,
            "frame": png.frame,
            "window": {"name": "lung", "center": -600.0, "width": 1500.0, "bits": 8},
        }
        seen.append((member.split, path))
    # split order as configured (extra split last), then path
    order = ["train", "val", "test", "holdout"]
    assert seen == sorted(seen, key=lambda s: (order.index(s[0]), s[1]))
    frames = [t["meta"]["frame"] for t in tasks if t["meta"]["split"] == "test"]
    assert frames == [0, 1]


def test_label_studio_sdk_accepts_the_tasks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("label_studio_sdk")
    from label_studio_sdk._extensions.label_studio_tools.core.utils import io as ls_io
    from label_studio_sdk.label_interface import LabelInterface

    contents = sample_contents()
    write_files(tmp_path, contents)
    monkeypatch.setattr(ls_io, "LOCAL_FILES_DOCUMENT_ROOT", str(tmp_path))
    config = LabelInterface(
        '<View><Image name="image" value="$image"/>'
        '<RectangleLabels name="label" toName="image"><Label value="Nodule"/></RectangleLabels></View>'
    )
    for task in manifest(contents, "manifests/labelstudio_tasks.json"):
        assert config.validate_task(task)
        resolved = ls_io.resolve_local_storage_file(task["data"]["image"])
        assert resolved is not None and Path(resolved).is_file()


def monai_load_decathlon_datalist(path: Path, key: str) -> list[dict[str, Any]]:
    """MONAI's documented rules (monai.data.load_decathlon_datalist, base_dir=None): the list
    under ``key``; "image" joined to the datalist's folder and normalized; other values joined
    only when that path exists."""
    items = json.loads(path.read_text())[key]
    base = path.parent
    out = []
    for item in items:
        assert isinstance(item, dict)
        resolved = {}
        for k, v in item.items():
            joined = os.path.normpath(base / v)
            resolved[k] = joined if k == "image" or os.path.exists(joined) else v
        out.append(resolved)
    return out


def test_monai_datalist_resolves_each_split_to_its_volumes(tmp_path: Path) -> None:
    contents = sample_contents()
    write_files(tmp_path, contents)
    datalist_path = tmp_path / "manifests/monai_datalist.json"
    datalist = json.loads(datalist_path.read_text())
    assert set(datalist) == {"name", "modality", "training", "validation", "test", "holdout"}
    assert datalist["modality"] == {"0": "CT+MR"}
    for split, key in {
        "train": "training",
        "val": "validation",
        "test": "test",
        "holdout": "holdout",
    }.items():
        expected = sorted(n.path for m in contents.members if m.split == split for n in m.nifti)
        loaded = monai_load_decathlon_datalist(datalist_path, key)
        assert [Path(i["image"]).relative_to(tmp_path).as_posix() for i in loaded] == expected
        assert all(Path(i["image"]).is_file() for i in loaded)
        assert all(i["case"] == layout.case_id(i["series_instance_uid"]) for i in loaded)


def test_monai_datalist_leaves_out_empty_splits() -> None:
    members = tuple(m for m in sample_contents().members if m.split == "train")
    datalist = manifest(sample_contents(members=members), "manifests/monai_datalist.json")
    assert set(datalist) == {"name", "modality", "training"}
    assert datalist["modality"] == {"0": "CT"}


def test_nnunet_dataset_json_follows_the_v2_format(tmp_path: Path) -> None:
    contents = sample_contents()
    write_files(tmp_path, contents)
    dataset = json.loads((tmp_path / "manifests/nnunet/dataset.json").read_text())
    # nnU-Net v2 dataset.json: channel_names with string indices, labels name -> int with
    # background 0, numTraining, file_ending (documentation: dataset_format.md)
    assert {"channel_names", "labels", "numTraining", "file_ending"} <= set(dataset)
    assert dataset["channel_names"] == {"0": "CT+MR"}
    assert dataset["labels"] == {"background": 0}
    assert dataset["file_ending"] == ".nii.gz"
    training = [m for m in contents.members if m.split in ("train", "val")]
    assert dataset["numTraining"] == sum(len(m.nifti) for m in training) == 4
    ct_only = sample_contents(members=tuple(m for m in contents.members if m.modality == "CT"))
    assert manifest(ct_only, "manifests/nnunet/dataset.json")["channel_names"] == {"0": "CT"}


def test_nnunet_splits_final_matches_the_split_table(tmp_path: Path) -> None:
    contents = sample_contents()
    write_files(tmp_path, contents)
    folds = json.loads((tmp_path / "manifests/nnunet/splits_final.json").read_text())
    assert isinstance(folds, list) and len(folds) == 1 and set(folds[0]) == {"train", "val"}
    by_split = {
        split: sorted(layout.case_id(m.member_id) for m in contents.members if m.split == split)
        for split in ("train", "val")
    }
    assert folds[0] == by_split
    assert not set(folds[0]["train"]) & set(folds[0]["val"])
    # each case id names a NIfTI file <case>_0000.nii.gz (nnU-Net's channel-0 naming) that exists
    for split, cases in folds[0].items():
        for case in cases:
            assert (tmp_path / f"nifti/{split}/{case}_0000.nii.gz").is_file()


def test_ohif_dicom_json_lists_studies_series_instances_with_naturalized_headers() -> None:
    contents = sample_contents()
    doc = manifest(contents, "manifests/ohif_dicom.json")
    studies = doc["studies"]
    assert [s["StudyInstanceUID"] for s in studies] == sorted(m.study_instance_uid for m in contents.members)
    by_study = {m.study_instance_uid: m for m in contents.members}
    for study in studies:
        member = by_study[study["StudyInstanceUID"]]
        assert study["PatientID"] == study["PatientName"] == member.patient_id
        assert study["StudyDate"] == "20200102"
        assert study["NumInstances"] == len(member.instances)
        assert study["Modalities"] == member.modality
        (series,) = study["series"]
        assert series["SeriesInstanceUID"] == member.member_id
        assert series["Modality"] == member.modality and series["SeriesNumber"] == 3
        numbers = [i["metadata"]["InstanceNumber"] for i in series["instances"]]
        assert numbers == sorted(numbers)
        paths = {i.sop_instance_uid: i.dicom_path for i in member.instances}
        for entry in series["instances"]:
            meta = entry["metadata"]
            assert entry["url"] == f"dicomweb:{paths[meta['SOPInstanceUID']]}"
            assert meta["Rows"] == 4 and meta["PixelSpacing"] == [0.5, 0.5]
            assert meta["ImageOrientationPatient"] == [1, 0, 0, 0, 1, 0]
            assert meta["WindowCenter"] == 40 and meta["ImageType"] == ["ORIGINAL", "PRIMARY", "AXIAL"]
            assert meta["AnatomicRegionSequence"] == [
                {"CodeMeaning": "Chest", "CodeValue": "T-D3000", "CodingSchemeDesignator": "SRT"}
            ]
            assert "PixelData" not in meta
    text = build_manifests(contents)["manifests/ohif_dicom.json"].decode()
    assert PRIVATE_TEXT not in text and "ACME" not in text.replace("ACME Medical", "")


def test_ohif_skips_instances_left_out_of_the_dicom_format() -> None:
    contents = sample_contents()
    first = contents.members[0]
    kept = (dataclasses.replace(first.instances[0], dicom_path=None), *first.instances[1:])
    members = (dataclasses.replace(first, instances=kept), *contents.members[1:])
    doc = manifest(sample_contents(members=members), "manifests/ohif_dicom.json")
    study = next(s for s in doc["studies"] if s["StudyInstanceUID"] == first.study_instance_uid)
    assert study["NumInstances"] == len(first.instances) - 1


def test_naturalize_follows_dcmjs_conventions() -> None:
    natural = naturalize(
        {
            "00100010": {"vr": "PN", "Value": [{"Alphabetic": "P0001"}]},
            "00080008": {"vr": "CS", "Value": ["DERIVED", "SECONDARY"]},
            "00200013": {"vr": "IS", "Value": [7]},
            "00081140": {"vr": "SQ", "Value": [{"00081155": {"vr": "UI", "Value": ["2.25.1"]}}]},
            "00081030": {"vr": "LO"},  # empty: left out
            "00291010": {"vr": "OB", "InlineBinary": "AAAA"},  # private and binary: left out
            "7FE00010": {"vr": "OW"},  # bulk: left out
        }
    )
    assert natural == {
        "PatientName": "P0001",
        "ImageType": ["DERIVED", "SECONDARY"],
        "InstanceNumber": 7,
        "ReferencedImageSequence": [{"ReferencedSOPInstanceUID": "2.25.1"}],
    }


def test_same_contents_give_the_same_bytes_whatever_the_input_order() -> None:
    contents = sample_contents()
    shuffled = sample_contents(members=tuple(reversed(contents.members)))
    first = build_manifests(contents)
    assert first == build_manifests(contents) == build_manifests(shuffled)
    for data in first.values():
        assert data.endswith(b"\n") and json.loads(data) is not None


def test_manifests_hold_no_text_beyond_the_de_identified_values() -> None:
    contents = sample_contents()
    allowed = {contents.window, "lung", f"{contents.project}/{contents.name}"}
    allowed |= {"CT", "MR", "CT+MR", "background", ".nii.gz", "train", "val", "studies"}
    for member in contents.members:
        allowed |= {member.member_id, member.patient_id, member.study_instance_uid, member.split}
        allowed |= {layout.case_id(s) for s in member.series_instance_uids}
        allowed |= {n.path for n in member.nifti} | {"../" + n.path for n in member.nifti}
        allowed |= {LOCAL_FILES_URL + p.path for p in member.png}
        for instance in member.instances:
            allowed |= {instance.sop_instance_uid, f"dicomweb:{instance.dicom_path}"}
            allowed |= strings(naturalize(json.loads(instance.header_json)))
    vocabulary = {
        "data", "meta", "image", "split", "case", "series_instance_uid", "sop_instance_uid", "frame",
        "window", "name", "center", "width", "bits", "modality", "training", "validation", "test",
        "holdout", "description", "channel_names", "labels", "numTraining", "file_ending", "0",
        "series", "instances", "metadata", "url", "NumInstances", "Modalities",
    }  # fmt: skip
    described = "Images only: add labelsTr/<case>.nii.gz and extend labels before training."
    for path, data in build_manifests(contents).items():
        leftover = strings(json.loads(data)) - allowed - vocabulary - {described}
        assert not leftover, (path, sorted(leftover)[:5])
        text = data.decode()
        for secret in ("SELECTION-SENTINEL", "PROT-9", "nodule detection", "gantry", PRIVATE_TEXT):
            assert secret not in text, (path, secret)
