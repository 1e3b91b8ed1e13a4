"""The per-object engine on a synthetic CT with planted identifiers, and on pydicom's files."""

from __future__ import annotations

import io
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian

from lakehouse.deid import DeidResult, DeidSettings, deidentify, pseudonymize_uid
from lakehouse.dicom.part10 import IMPLEMENTATION_CLASS_UID

KEY = bytes(range(32))
SOP_UID = "1.2.826.0.1.3680043.8.498.1001"
STUDY_UID = "1.2.826.0.1.3680043.8.498.2001"
SERIES_UID = "1.2.826.0.1.3680043.8.498.3001"
FRAME_UID = "1.2.826.0.1.3680043.8.498.4001"
OTHER_SOP_UID = "1.2.826.0.1.3680043.8.498.1002"
PIXELS = bytes(range(256)) * 32  # 64x64 16-bit


def _item(**kw: object) -> Dataset:
    item = Dataset()
    for k, v in kw.items():
        setattr(item, k, v)
    return item


def make_ct(**overrides: object) -> Dataset:
    """A CT image whose identifying values are unique tokens (and no burned-in risk)."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = CTImageStorage
    ds.file_meta.MediaStorageSOPInstanceUID = SOP_UID
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.ImplementationClassUID = "1.2.3.4.5.6.7"
    ds.file_meta.ImplementationVersionName = "SRCIMPL"
    ds.file_meta.SourceApplicationEntityTitle = "SRCAETITLE"
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = SOP_UID
    ds.StudyInstanceUID = STUDY_UID
    ds.SeriesInstanceUID = SERIES_UID
    ds.FrameOfReferenceUID = FRAME_UID
    ds.Modality = "CT"
    ds.Manufacturer = "ACME"
    ds.PatientName = "Zyxwvut^Qwertina"
    ds.PatientID = "PIDTOKEN7781"
    ds.PatientBirthDate = "19500315"
    ds.PatientSex = "F"
    ds.PatientAge = "095Y"
    ds.AccessionNumber = "ACCTOKEN5521"
    ds.StudyID = "STUDYTOK9"
    ds.StudyDate = "20200110"
    ds.SeriesDate = "20200110"
    ds.ContentDate = "20200111"
    ds.StudyTime = "101500"
    ds.ContentTime = "101700"
    ds.AcquisitionDateTime = "20200110101600"
    ds.ReferringPhysicianName = "Refdoc^Plumbus"
    ds.InstitutionName = "Instokenhospital"
    ds.StationName = "STATIONTOK"
    ds.DeviceSerialNumber = "SERIALTOK42"
    ds.StudyDescription = "CT for Zyxwvut"
    ds.SeriesDescription = "Axial"
    ds.PatientComments = "call Qwertina"
    ds.BodyPartExamined = "CHEST"
    ds.BurnedInAnnotation = "NO"
    ds.ReferencedImageSequence = Sequence([_item(ReferencedSOPClassUID=CTImageStorage,
                                                 ReferencedSOPInstanceUID=OTHER_SOP_UID)])
    ds.RequestAttributesSequence = Sequence([_item(RequestedProcedureID="REQTOK77",
                                                   ScheduledProcedureStepID="SPSTOK")])
    ds.IconImageSequence = Sequence([_item(Rows=1, Columns=2, BitsAllocated=8, PixelData=b"\x00\x01")])
    ds.add_new(0x00091010, "LO", "PRIVTOKEN")
    ds.add_new(0x00090010, "LO", "ACME PRIVATE")
    ds.add_new(0x60000010, "US", 1)
    ds.add_new(0x60000011, "US", 1)
    ds.add_new(0x60003000, "OW", b"\x01\x00")
    ds.add_new(0x60004000, "LT", "OVERLAYTOK for Zyxwvut")
    ds.add_new(0x50000022, "LO", "CURVETOK")
    ds.Rows, ds.Columns = 64, 64
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.PixelData = PIXELS
    for k, v in overrides.items():
        setattr(ds, k, v)
    return ds


def to_bytes(ds: Dataset) -> bytes:
    buf = io.BytesIO()
    pydicom.dcmwrite(buf, ds, enforce_file_format=True)
    return buf.getvalue()


def run(ds: Dataset, *options: str, key: bytes = KEY) -> DeidResult:
    return deidentify(to_bytes(ds), DeidSettings(project="p", key=key, options=frozenset(options)))


def out(result: DeidResult) -> Dataset:
    assert result.outcome == "deidentified", (result.reason, result.tag_path)
    assert result.data is not None
    return pydicom.dcmread(io.BytesIO(result.data))


PLANTED = [b"Zyxwvut", b"Qwertina", b"PIDTOKEN7781", b"ACCTOKEN5521", b"STUDYTOK9", b"Refdoc", b"Plumbus",
           b"Instokenhospital", b"STATIONTOK", b"SERIALTOK42", b"PRIVTOKEN", b"OVERLAYTOK", b"CURVETOK",
           b"REQTOK77", b"SPSTOK", b"SRCAETITLE", b"SRCIMPL", b"19500315", b"20200110", b"20200111",
           SOP_UID.encode(), STUDY_UID.encode(), SERIES_UID.encode(), FRAME_UID.encode(), OTHER_SOP_UID.encode()]


def test_basic_profile_leaves_no_planted_token_in_the_bytes() -> None:
    result = run(make_ct())
    data = out(result) and result.data
    assert data is not None
    assert [t for t in PLANTED if t in data] == []
    assert result.pseudo_patient_id and result.pseudo_patient_id.encode() not in [b""]


def test_actions_per_code() -> None:
    result = run(make_ct())
    ds = out(result)
    assert ds.PatientName == ""  # Z
    assert ds.PatientID == result.pseudo_patient_id  # Z/D → keyed token
    assert ds.AccessionNumber not in ("", "ACCTOKEN5521") and len(ds.AccessionNumber) <= 16  # Z → token
    assert "StudyDescription" not in ds and "PatientComments" not in ds  # X
    assert "InstitutionName" not in ds and "StationName" not in ds  # X/Z/D → X (Type 3)
    assert ds.DeviceSerialNumber == "ANONYMIZED"  # X/Z/D → D (Type 1 in enhanced equipment)
    assert ds.ContentDate == "19000101"  # Z/D → D for a Type 1/2C date
    assert ds.StudyInstanceUID == pseudonymize_uid(STUDY_UID, KEY)  # U
    assert ds.Modality == "CT" and ds.BodyPartExamined == "CHEST"  # not in the table: kept
    assert ds.SOPClassUID == CTImageStorage  # well-known UIDs are not replaced
    counts = result.report["actions"]
    assert {"D", "U", "X", "Z"} <= counts.keys()


def test_private_overlay_curve_icon_and_request_attributes_removed() -> None:
    ds = out(run(make_ct()))
    assert not any(e.tag.is_private for e in ds.iterall())
    assert not any(0x6000 <= e.tag.group <= 0x601E for e in ds)  # whole overlay plane goes
    assert not any(0x5000 <= e.tag.group <= 0x501E for e in ds)
    assert "IconImageSequence" not in ds and "RequestAttributesSequence" not in ds


def test_clean_graphics_cannot_vouch_for_overlay_bitmaps_so_planes_and_curves_go() -> None:
    ds = out(run(make_ct(), "clean-graphics"))
    assert not any(0x6000 <= e.tag.group <= 0x601E for e in ds)  # a bitmap may hold burned-in text
    assert not any(0x5000 <= e.tag.group <= 0x501E for e in ds)


def test_clean_descriptors_keeps_description_without_identifiers() -> None:
    ds = out(run(make_ct(), "clean-descriptors"))
    assert ds.StudyDescription == "CT for"
    request = ds.RequestAttributesSequence[0]  # kept under C, its IDs removed or replaced by keyed tokens
    assert request.RequestedProcedureID not in ("", "REQTOK77") and len(request.RequestedProcedureID) == 16
    assert not request.get("ScheduledProcedureStepID")


def test_pixel_data_kept_byte_for_byte_with_the_same_transfer_syntax() -> None:
    ds = out(run(make_ct()))
    assert ds.PixelData == PIXELS
    assert ds.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian


def test_file_meta_rebuilt_and_method_recorded() -> None:
    result = run(make_ct(), "retain-modified-dates")
    ds = out(result)
    meta = ds.file_meta
    assert meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID == pseudonymize_uid(SOP_UID, KEY)
    assert meta.ImplementationClassUID == IMPLEMENTATION_CLASS_UID
    assert "SourceApplicationEntityTitle" not in meta and 0x00020017 not in meta and 0x00020018 not in meta
    assert ds.PatientIdentityRemoved == "YES"
    assert ds.LongitudinalTemporalInformationModified == "MODIFIED"
    codes = [item.CodeValue for item in ds.DeidentificationMethodCodeSequence]
    assert codes == ["113100", "113107"]
    assert "retain-modified-dates" in list(ds.DeidentificationMethod)


def test_referential_integrity_every_reference_resolves_to_an_output_uid() -> None:
    first = run(make_ct())
    second = run(make_ct(SOPInstanceUID=OTHER_SOP_UID))
    a, b = out(first), out(second)
    assert a.ReferencedImageSequence[0].ReferencedSOPInstanceUID == b.SOPInstanceUID
    assert a.StudyInstanceUID == b.StudyInstanceUID and a.FrameOfReferenceUID == b.FrameOfReferenceUID
    assert first.uid_map[SOP_UID] == a.SOPInstanceUID and first.uid_map[OTHER_SOP_UID] == b.SOPInstanceUID
    assert all(v.startswith("2.25.") for v in first.uid_map.values())


def test_retain_uids_keeps_them() -> None:
    ds = out(run(make_ct(), "retain-uids"))
    assert ds.SOPInstanceUID == SOP_UID and ds.StudyInstanceUID == STUDY_UID


def test_modified_dates_shift_every_date_by_one_offset() -> None:
    result = run(make_ct(), "retain-modified-dates")
    ds = out(result)
    from datetime import date

    from lakehouse.deid import date_offset_days

    offset = date_offset_days(result.pseudo_patient_id or "", KEY)
    study = date(2020, 1, 10)
    assert ds.StudyDate == ds.SeriesDate != "20200110"
    assert (date.fromisoformat(f"{ds.StudyDate[:4]}-{ds.StudyDate[4:6]}-{ds.StudyDate[6:]}") - study).days == offset
    assert ds.AcquisitionDateTime == ds.StudyDate + "101600"
    assert ds.StudyTime == "101500"  # whole-day offsets keep times consistent


def test_full_dates_keep_dates_and_basic_profile_removes_them() -> None:
    kept = out(run(make_ct(), "retain-full-dates"))
    assert kept.StudyDate == "20200110" and kept.LongitudinalTemporalInformationModified == "UNMODIFIED"
    basic = out(run(make_ct()))
    assert basic.StudyDate == "" and "SeriesDate" not in basic
    assert basic.LongitudinalTemporalInformationModified == "REMOVED"


def test_patient_characteristics_and_age_cap() -> None:
    retained = out(run(make_ct(), "retain-patient-characteristics"))
    assert retained.PatientAge == "090Y" and retained.PatientSex == "F"  # Safe Harbor whatever the option
    basic = out(run(make_ct()))
    assert "PatientAge" not in basic and basic.PatientSex == ""
    outside_table = make_ct()
    outside_table.add_new(0x00729999, "AS", "095Y")  # an age the profile does not list is kept, capped
    assert out(run(outside_table))[0x00729999].value == "090Y"


@pytest.mark.parametrize(("age", "kept"), [
    ("045Y", "045Y"), ("089Y", "089Y"), ("090Y", "090Y"), ("097Y", "090Y"), ("120Y", "090Y"),
    ("999M", "999M"), ("999W", "999W"), ("030D", "030D"), ("97Y", "090Y"), ("97 years", ""), ("", ""),
])
def test_safe_harbor_ages_whatever_the_unit(age: str, kept: str) -> None:
    ds = out(run(make_ct(PatientAge=age), "retain-patient-characteristics"))
    assert ds.PatientAge == kept
    assert ds.PatientBirthDate == ""  # Z under every option: a birth date never leaves


def test_device_and_institution_identity_options() -> None:
    ds = out(run(make_ct(), "retain-device-identity", "retain-institution-identity"))
    assert ds.DeviceSerialNumber == "SERIALTOK42" and ds.StationName == "STATIONTOK"
    assert ds.InstitutionName == "Instokenhospital"


def _sr() -> Dataset:
    ds = make_ct(SOPClassUID="1.2.840.10008.5.1.4.1.1.88.11", Modality="SR")
    del ds.PixelData
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    impression = _item(CodeValue="121073", CodingSchemeDesignator="DCM", CodeMeaning="Impression")
    text = _item(RelationshipType="CONTAINS", ValueType="TEXT", TextValue="seen by Qwertina",
                 ConceptNameCodeSequence=Sequence([impression]))
    comment = _item(CodeValue="121106", CodingSchemeDesignator="DCM", CodeMeaning="Comment")
    remark = _item(RelationshipType="CONTAINS", ValueType="TEXT", TextValue="COMMENTTOK",
                   ConceptNameCodeSequence=Sequence([comment]))
    observer = _item(RelationshipType="HAS OBS CONTEXT", ValueType="PNAME", PersonName="Obsname^Tok",
                     ConceptNameCodeSequence=Sequence([_item(CodeValue="121008", CodingSchemeDesignator="DCM",
                                                             CodeMeaning="Person Observer Name")]))
    image = _item(RelationshipType="CONTAINS", ValueType="IMAGE",
                  ConceptNameCodeSequence=Sequence([_item(CodeValue="113795", CodingSchemeDesignator="DCM",
                                                          CodeMeaning="Acquired Image")]),
                  ReferencedSOPSequence=Sequence([_item(ReferencedSOPClassUID=CTImageStorage,
                                                        ReferencedSOPInstanceUID=OTHER_SOP_UID)]))
    ds.ValueType = "CONTAINER"
    ds.ContentSequence = Sequence([text, observer, image, remark])
    return ds


def test_sr_content_without_clean_structured_content_dummies_text() -> None:
    result = run(_sr())
    ds = out(result)
    text, observer, image, remark = ds.ContentSequence
    assert text.TextValue == remark.TextValue == "ANONYMIZED" and observer.PersonName == "ANONYMOUS"
    assert image.ReferencedSOPSequence[0].ReferencedSOPInstanceUID == pseudonymize_uid(OTHER_SOP_UID, KEY)
    assert b"Obsname" not in (result.data or b"")


def test_sr_content_with_clean_structured_content_uses_table_e_3_4_1() -> None:
    ds = out(run(_sr(), "clean-structured-content"))
    values = {item.ValueType: item for item in ds.ContentSequence}
    assert len(ds.ContentSequence) == 3  # Comment (121106) is X in E.3.4-1: the item goes
    assert values["TEXT"].TextValue == "seen by"  # Impression is not listed: cleaned
    assert "PNAME" not in values or values["PNAME"].PersonName != "Obsname^Tok"
    ref = values["IMAGE"].ReferencedSOPSequence[0].ReferencedSOPInstanceUID
    assert ref == pseudonymize_uid(OTHER_SOP_UID, KEY)


def test_same_key_and_source_give_same_bytes_in_another_process(tmp_path: Path) -> None:
    source = tmp_path / "in.dcm"
    source.write_bytes(to_bytes(make_ct()))
    here = run(make_ct(), "retain-modified-dates").data
    script = (
        "import sys; from lakehouse.deid import DeidSettings, deidentify; "
        "r = deidentify(open(sys.argv[1], 'rb').read(), DeidSettings('p', bytes(range(32)), "
        "frozenset({'retain-modified-dates'}))); sys.stdout.buffer.write(r.data)"
    )
    env = dict(os.environ, PYTHONHASHSEED="12345")
    there = subprocess.run([sys.executable, "-c", script, str(source)], capture_output=True, check=True, env=env)
    assert there.stdout == here
    assert run(make_ct(), "retain-modified-dates").data == here


def test_different_keys_give_unlinkable_outputs() -> None:
    a = out(run(make_ct()))
    b = out(run(make_ct(), key=b"\xff" * 32))
    assert a.SOPInstanceUID != b.SOPInstanceUID and a.PatientID != b.PatientID


def test_dataset_input_is_not_modified_and_results_pickle() -> None:
    source = make_ct()
    result = deidentify(source, DeidSettings("p", KEY))
    assert source.PatientName == "Zyxwvut^Qwertina"
    again = pickle.loads(pickle.dumps(result))
    assert again.data == result.data and again.uid_map == result.uid_map
    assert "key" not in repr(DeidSettings("p", KEY)) or repr(KEY) not in repr(DeidSettings("p", KEY))


def test_unparseable_bytes_are_quarantined() -> None:
    result = deidentify(b"not dicom at all", DeidSettings("p", KEY))
    assert (result.outcome, result.reason, result.data) == ("quarantined", "unparseable", None)


def test_burned_in_risk_without_clean_pixel_data_is_quarantined() -> None:
    result = run(make_ct(BurnedInAnnotation="YES"))
    assert (result.outcome, result.reason) == ("quarantined", "burned_in_risk")


def test_character_set_files_are_deidentified_or_quarantined() -> None:
    from pydicom.data import get_charset_files

    for path in get_charset_files():
        result = deidentify(Path(path).read_bytes(), DeidSettings("p", KEY))
        assert result.outcome == "deidentified" or result.reason, path
        if result.outcome == "deidentified":
            ds = out(result)
            assert ds.PatientName == "" and ds.SpecificCharacterSet


def test_our_own_deidentification_record_is_never_a_residual_hit() -> None:
    """A phantom named like the method we write ("... Enhanced Dicom Phantom", nibabel's test
    files) is published: the record is fixed text of ours, not a value left from the source."""
    ds = make_ct()
    ds.PatientName = "Dicom^Basic Profile"
    result = run(ds)
    assert result.outcome == "deidentified", (result.reason, result.tag_path)
    assert "Basic Profile" in str(out(result).DeidentificationMethod)
