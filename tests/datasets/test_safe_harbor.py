"""HIPAA Safe Harbor ages (issue 16's first part): a 97-year-old leaves as 090Y in the object,
the tables and the dataset, even under Retain Patient Characteristics."""

from __future__ import annotations

import pydicom
from datasets_testing import PROJECT, export_request
from lakehouse_testing import Prepared

from lakehouse import datasets, lake


def test_ages_above_89_leave_as_090Y_everywhere(lh: Prepared) -> None:
    archive = lh.root / "archive"
    source = next(p for p in sorted(archive.rglob("*.dcm")) if pydicom.dcmread(p, stop_before_pixels=True).Modality == "CT")
    ds = pydicom.dcmread(source)
    ds.PatientID, ds.PatientName, ds.PatientAge = "OLD0001", "Old^Person", "097Y"
    ds.StudyInstanceUID, ds.SeriesInstanceUID = "1.2.826.0.1.3680043.9.8.1", "1.2.826.0.1.3680043.9.8.2"
    ds.SOPInstanceUID = "1.2.826.0.1.3680043.9.8.3"
    (archive / "old").mkdir()
    ds.save_as(archive / "old" / "1.dcm")
    export_request(lh.settings, cohort={"patient_ids": ["OLD0001"]},
                   options=("retain-patient-characteristics", "retain-modified-dates", "clean-descriptors"))

    studies = lake.table(lh.settings, "studies", project=PROJECT).read(columns=["PatientAge", "PatientBirthDate"])
    ages = set(studies.column("PatientAge").to_pylist()) - {None}
    assert ages == {"090Y"}  # the only study exported with ages kept is the 97-year-old's
    assert set(studies.column("PatientBirthDate").to_pylist()) == {None}
    instances = lake.table(lh.settings, "instances", project=PROJECT).read(columns=["object_key", "header_json"])
    research = lh.root / "research"
    published = [pydicom.dcmread(research / key) for key in instances.column("object_key").to_pylist()]
    assert {d.get("PatientAge") for d in published} <= {None, "090Y"} and any(d.get("PatientAge") for d in published)
    assert not any("097Y" in text for text in instances.column("header_json").to_pylist())

    built = datasets.build_dataset(lh.settings, datasets.BuildOptions(
        project=PROJECT, name="old", selection=datasets.Selection("sql", "PatientAge IS NOT NULL")), user="cora")
    folder = lh.root / "datasets" / PROJECT / "old" / "v1"
    copies = [pydicom.dcmread(p) for p in folder.rglob("*.dcm")]
    assert copies and {d.PatientAge for d in copies} == {"090Y"} and len(built.contents.members) == 1
