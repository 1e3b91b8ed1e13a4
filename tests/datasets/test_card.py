"""Dataset card: the Croissant JSON-LD validated and read back by mlcroissant (over real DICOM,
PNG and sidecar files of a pulled version), and the DATASHEET's facts."""

from __future__ import annotations

import hashlib
import itertools
import json
import math
from pathlib import Path

import pytest
from PIL import Image
from pydicom import Dataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid
from test_manifests import SELECTION, sample_contents, strings, write_files

from lakehouse.datasets import layout
from lakehouse.datasets.card import build_card, croissant, datasheet
from lakehouse.datasets.manifests import build_manifests
from lakehouse.datasets.model import VersionContents

mlc = pytest.importorskip("mlcroissant")


def write_version(root: Path, contents: VersionContents) -> Path:
    """A pulled version on disk: real DICOM objects (from each de-identified header), real PNGs,
    sidecar JSON, the manifests and the card."""
    write_files(root, contents)
    for member in contents.members:
        for instance in member.instances:
            ds = Dataset.from_json(instance.header_json)
            ds.PixelData = bytes(32)
            ds["PixelData"].VR = "OW"
            ds.file_meta = Dataset()
            ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
            ds.file_meta.MediaStorageSOPClassUID = CTImageStorage
            ds.file_meta.MediaStorageSOPInstanceUID = instance.sop_instance_uid
            ds.file_meta.ImplementationClassUID = generate_uid(prefix="2.25.")
            assert instance.dicom_path
            ds.save_as(root / instance.dicom_path, enforce_file_format=True)
        for png in member.png:
            Image.new("L", (png.columns, png.rows), 128).save(root / png.path)
        for nifti in member.nifti:
            sidecar = {"SeriesInstanceUID": nifti.series_instance_uid, "shape": list(nifti.shape)}
            (root / nifti.sidecar_path).write_text(json.dumps(sidecar))
    for path, data in build_card(contents).items():
        (root / path).write_bytes(data)
    return root / layout.CROISSANT


def records(dataset: object, record_set: str) -> list[dict[str, object]]:
    def plain(value: object) -> object:
        return value.decode() if isinstance(value, bytes) else value

    return [
        {k.split("/", 1)[1]: plain(v) for k, v in r.items()}
        for r in dataset.records(record_set)  # type: ignore[attr-defined]
    ]


def test_croissant_validates_with_mlcroissant(tmp_path: Path) -> None:
    path = write_version(tmp_path, sample_contents())
    dataset = mlc.Dataset(jsonld=str(path))
    issues = dataset.metadata.ctx.issues
    assert not issues.errors
    # only properties a deterministic, rebuildable card leaves out: a publication date, a citation
    # and a version (the folder vN and version.json name it, so a rebuild gives the same bytes)
    assert all(any(p in w for p in ("datePublished", "citeAs", "schema.org/version")) for w in issues.warnings), (
        issues.warnings)
    doc = json.loads(path.read_text())
    assert doc["conformsTo"] == "http://mlcommons.org/croissant/1.0"
    assert {d["@id"] for d in doc["distribution"] if d["@type"] == "cr:FileSet"} == {
        "dicom-files",
        "nifti-files",
        "nifti-sidecars",
        "png-files",
    }


def test_mlcroissant_reads_the_split_table_and_members(tmp_path: Path) -> None:
    contents = sample_contents()
    dataset = mlc.Dataset(jsonld=str(write_version(tmp_path, contents)))
    splits = records(dataset, "splits")
    assert [(s["name"], s["ratio"]) for s in splits[:3]] == [("train", 0.7), ("val", 0.15), ("test", 0.15)]
    assert splits[3]["name"] == "holdout" and math.isnan(splits[3]["ratio"])  # type: ignore[arg-type]
    assert splits[0]["url"] == "cr:TrainingSplit" and splits[2]["url"] == "cr:TestSplit"
    members = {m["member_id"]: m for m in records(dataset, "members")}
    assert len(members) == len(contents.members)
    for member in contents.members:
        got = members[member.member_id]
        assert (got["split"], got["patient_id"], got["modality"], got["body_part"], got["manufacturer"]) == (
            member.split,
            member.patient_id,
            member.modality,
            member.body_part,
            member.manufacturer,
        )
        assert got["instances"] == len(member.instances) and got["series"] == 1


def test_mlcroissant_reads_every_file_with_its_split(tmp_path: Path) -> None:
    contents = sample_contents()
    dataset = mlc.Dataset(jsonld=str(write_version(tmp_path, contents)))
    dicom = records(dataset, "dicom")
    expected = {(i.sop_instance_uid, m.split) for m in contents.members for i in m.instances}
    assert {(r["sop_instance_uid"], r["split"]) for r in dicom} == expected
    png = records(dataset, "png")
    assert sorted((r["sop_instance_uid"], r["split"]) for r in png) == sorted(
        (p.sop_instance_uid, m.split) for m in contents.members for p in m.png
    )
    assert all(r["content"].size == (4, 4) for r in png)  # decoded by mlcroissant
    nifti = records(dataset, "nifti")
    assert sorted((r["case"], r["split"]) for r in nifti) == sorted(
        (layout.case_id(m.member_id), m.split) for m in contents.members
    )


def test_croissant_lists_each_manifest_with_its_checksum() -> None:
    contents = sample_contents()
    objects = {
        d["contentUrl"]: d for d in croissant(contents)["distribution"] if d["@type"] == "cr:FileObject"
    }
    manifests = build_manifests(contents)
    assert set(objects) == set(manifests)
    for path, data in manifests.items():
        assert objects[path]["sha256"] == hashlib.sha256(data).hexdigest()


def test_croissant_holds_only_de_identified_values() -> None:
    contents = sample_contents()
    text = build_card(contents)[layout.CROISSANT].decode()
    for secret in ("SELECTION-SENTINEL", "nodule detection", "PROT-9", "PRIVATE-CREATOR-TEXT", "req-0001"):
        assert secret not in text
    member_values = {
        str(v)
        for m in contents.members
        for v in (m.member_id, m.patient_id, m.study_instance_uid, m.manufacturer)
    }
    assert member_values <= strings(json.loads(text))


def table(md: str, heading: str) -> list[list[str]]:
    """Rows (header first) of the first Markdown table under ``heading``."""
    section = md.split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]
    lines = section.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("|"))
    rows = list(itertools.takewhile(lambda line: line.startswith("|"), lines[start:]))
    cells = [[c.strip().replace("\\|", "|") for c in _split_row(row)] for row in rows]
    return [cells[0], *cells[2:]]


def _split_row(row: str) -> list[str]:
    parts, cell, escaped = [], "", False
    for ch in row.strip()[1:-1]:
        if ch == "|" and not escaped:
            parts.append(cell)
            cell = ""
        else:
            cell += ch
        escaped = ch == "\\" and not escaped
    return [*parts, cell]


def test_datasheet_counts_members_per_split_by_modality_body_part_and_manufacturer() -> None:
    md = datasheet(sample_contents())
    assert table(md, "Splits") == [
        ["split", "target", "patients", "members", "series", "instances", "nifti volumes", "png images"],
        ["train", "0.7", "2", "3", "3", "7", "3", "7"],
        ["val", "0.15", "1", "1", "1", "2", "1", "2"],
        ["test", "0.15", "1", "1", "1", "1", "1", "2"],
        ["holdout", "", "1", "1", "1", "2", "1", "2"],
    ]
    assert table(md, "Members per split by modality") == [
        ["modality", "train", "val", "test", "holdout", "total"],
        ["CT", "3", "0", "1", "1", "5"],
        ["MR", "0", "1", "0", "0", "1"],
    ]
    assert table(md, "Members per split by body part")[1:] == [
        ["CHEST", "3", "0", "1", "1", "5"],
        ["HEAD", "0", "1", "0", "0", "1"],
    ]
    assert table(md, "Members per split by manufacturer")[1:] == [
        ["ACME Medical", "2", "1", "0", "0", "3"],
        ["Other | Vendor", "1", "0", "1", "1", "3"],
    ]


def test_datasheet_names_requests_sources_selection_and_exclusions() -> None:
    contents = sample_contents()
    md = datasheet(contents)
    assert table(md, "Source requests")[1:] == [
        ["req-0001", "PROT-1", "nodule detection", "basic", "none"],
        ["req-0002", "PROT-9", "nodule detection | v2", "basic", "retain-uids, clean-pixels"],
    ]
    assert table(md, "Source Delta versions")[1:] == [["instances", "9"], ["series", "7"], ["studies", "7"]]
    assert f"```sql\n{SELECTION}\n```" in md and contents.selection_sha256 in md
    assert table(md, "Exclusions")[1:] == [
        ["member", "not\\_an\\_image", "1"],
        ["nifti", "gantry\\_tilt", "1"],
    ]
    assert "slices are tilted 12 degrees" in md and "a single structured report" in md
    assert "Built by: lakehouse 0.12.0" in md and "Frozen splits: test" in md


def test_datasheet_fences_a_selection_that_contains_backticks() -> None:
    text = "where: ```x```\nmodality: CT"
    md = datasheet(sample_contents(selection_kind="yaml", selection_text=text))
    assert f"````yaml\n{text}\n````" in md


def test_card_is_deterministic() -> None:
    contents = sample_contents()
    shuffled = sample_contents(
        members=tuple(reversed(contents.members)), exclusions=contents.exclusions[::-1]
    )
    assert build_card(contents) == build_card(contents) == build_card(shuffled)
    assert set(build_card(contents)) == {layout.CROISSANT, layout.DATASHEET}
