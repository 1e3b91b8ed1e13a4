"""The k-anonymity floor in a real export: generalizations applied to objects and tables when
they reach [policy] min_k, a refusal before the first archive read when they cannot, counts
only in the run state and the audit; and the review shows k before and after."""

from __future__ import annotations

import io
import json
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pydicom
import pytest
from export_testing import PROJECT, ROLES, lakehouse, objects, read_table
from lakehouse_testing import set_sections
from pydicom.dataset import FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

from lakehouse import governance
from lakehouse.catalog import sync_catalog
from lakehouse.config import init_root, load_settings
from lakehouse.deid.risk import measure, quasi_identifiers, study_records
from lakehouse.errors import Refused
from lakehouse.export import run_export

OPTIONS = ["retain-patient-characteristics"]


def ct(patient: int, sex: str, age: str, model: str, weight: str) -> pydicom.Dataset:
    """A small CT slice; names, IDs and UIDs differ per patient, quasi-identifiers as given."""
    ds = pydicom.Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = CTImageStorage
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = generate_uid(entropy_srcs=["risk", str(patient), "sop"])
    ds.StudyInstanceUID = generate_uid(entropy_srcs=["risk", str(patient), "study"])
    ds.SeriesInstanceUID = generate_uid(entropy_srcs=["risk", str(patient), "series"])
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.PatientName = f"Testperson^Number{patient:02d}"
    ds.PatientID = f"MRN{patient:05d}"
    ds.PatientBirthDate = "19500101"
    ds.PatientSex = sex
    ds.PatientAge = age
    ds.PatientWeight = weight
    ds.StudyDate = "20200102"
    ds.Modality = "CT"
    ds.BodyPartExamined = "CHEST"
    ds.Manufacturer = "Acme"
    ds.ManufacturerModelName = model
    ds.BurnedInAnnotation = "NO"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.Rows = ds.Columns = 8
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 0
    ds.PixelData = np.zeros((8, 8), np.uint16).tobytes()
    return ds


def root_with(tmp_path: Path, cohort: list[tuple[str, str, str, str]], min_k: int) -> tuple[Path, str]:
    root = tmp_path / "lh"
    config = init_root(root)
    set_sections(config, roles=ROLES, export={"batch_size": 4, "workers": 1}, policy={"min_k": min_k})
    for index, (sex, age, model, weight) in enumerate(cohort):
        ct(index, sex, age, model, weight).save_as(root / "archive" / f"p{index}.dcm", enforce_file_format=True)
    settings = load_settings(config, env={})
    sync_catalog(settings)
    request = governance.submit_request(
        settings, user="alice", project=PROJECT, title="Chest CT", purpose="Risk test", protocol="IRB-1",
        cohort={}, options=OPTIONS,
    )
    governance.approve(settings, request.id, user="bob", expires=date.today() + timedelta(days=30))
    return config, request.id


# Six women aged 41-49 on two scanner models: k = 1 as they are; model to manufacturer and
# 5-year bands leave two classes (40-44: 3, 45-49: 3), 10-year bands one class of 6.
SIX = [("F", age, model, weight) for age, model, weight in
       [("041Y", "M1", "61"), ("043Y", "M2", "64"), ("044Y", "M1", "68"),
        ("046Y", "M2", "72"), ("048Y", "M1", "75"), ("049Y", "M2", "79")]]


def test_an_export_generalizes_until_the_floor_holds_in_objects_tables_and_audit(tmp_path: Path) -> None:
    config, request_id = root_with(tmp_path, SIX, min_k=5)
    settings = load_settings(config, env={})
    outcome = run_export(settings, request_id, user="olga")
    risk = outcome.state.risk
    assert risk is not None
    assert risk["before"]["k"] == 1 and risk["after"]["k"] == 6
    assert risk["generalizations"] == ["model-to-manufacturer", "age-5y", "weight-10kg", "age-10y", "weight-removed"]
    # what was measured is what left: objects and tables carry the bands and the removals
    root = config.parent
    for data in objects(root, PROJECT).values():
        ds = pydicom.dcmread(io.BytesIO(data))
        assert ds.PatientAge == "040Y"
        assert ds.PatientWeight in ("", None)
        assert ds.ManufacturerModelName == ""
        assert ds.Manufacturer == "Acme"
        assert list(ds.DeidentificationMethod)[-5:] == [f"generalized {step}" for step in risk["generalizations"]]
    studies = read_table(root, PROJECT, "studies")
    assert set(studies["PatientAge"].to_list()) == {"040Y"}
    # the published rows, measured again as a dataset would be: the same k as the run recorded
    series = read_table(root, PROJECT, "series").drop(["export_run_id", "request_id", "project", "deid_profile",
                                                        "deid_options"])
    published = studies.join(series, on="StudyInstanceUID").rename({"PatientID": "patient",
                                                                     "StudyInstanceUID": "study"})
    chosen = [qi for qi in quasi_identifiers() if qi.name in risk["after"]["quasi_identifiers"]]
    remeasured = measure(study_records(published.to_arrow(), chosen), [qi.name for qi in chosen], 5)
    assert (remeasured.k, remeasured.patients_below) == (risk["after"]["k"], 0)
    assert set(read_table(root, PROJECT, "series")["ManufacturerModelName"].to_list()) <= {None, ""}
    # counts and attribute names only, in the run state and in the audit
    started = [e for e in governance.list_audit(settings) if e.action == "export.start"][-1]
    assert started.details["risk_k_before"] == 1 and started.details["risk_k_after"] == 6
    assert started.details["risk_generalizations"] == risk["generalizations"]
    text = json.dumps(risk)
    for value in ("M1", "M2", "041Y", "Acme", "MRN", '"F"'):
        assert value not in text


def test_an_export_below_the_floor_is_refused_before_any_read(tmp_path: Path) -> None:
    three = [("F", "041Y", "M1", "60"), ("M", "052Y", "M1", "80"), ("F", "067Y", "M2", "70")]
    config, request_id = root_with(tmp_path, three, min_k=5)
    settings = load_settings(config, env={})
    with pytest.raises(Refused, match="fewer than min_k 5 patients"):
        run_export(settings, request_id, user="olga")
    assert objects(config.parent, PROJECT) == {}
    refused = [e for e in governance.list_audit(settings) if e.action == "export.refused"][-1]
    assert refused.details["risk_patients_below_after"] == 3 and refused.details["risk_refused"] is True


def test_the_review_and_the_cli_show_k_before_and_after(tmp_path: Path) -> None:
    config, request_id = root_with(tmp_path, SIX, min_k=5)
    shown = lakehouse("request", "review", request_id, "--config", str(config), "--user", "bob")
    assert shown.returncode == 0, shown.stderr
    assert "re-identification risk (k-anonymity, floor min_k 5)" in shown.stdout
    assert "k = 1 before generalization; patients below the floor: 6" in shown.stdout
    assert "generalizations the export applies: model-to-manufacturer, age-5y" in shown.stdout
    assert "k = 6 after" in shown.stdout
    as_json = json.loads(
        lakehouse("request", "show", request_id, "--config", str(config), "--user", "bob", "--json").stdout
    )
    assert as_json["review"]["risk"]["k_after"] == 6
    submitted = lakehouse("request", "list", "--config", str(config), "--user", "bob", "--json")
    assert submitted.returncode == 0
