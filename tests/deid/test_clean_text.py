"""The C action on free text is an allowlist: vocabulary stays, every other word goes; Code
Meanings of local coding schemes are free text, those of standard schemes are vocabulary."""

from __future__ import annotations

import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from test_engine import make_ct, out, run

from lakehouse import resources
from lakehouse.deid.clean_text import REDACTED_MEANING, clean_text, is_standard_scheme, vocabulary


@pytest.mark.parametrize(
    "text",
    ["CT CHEST W/O CONTRAST", "Ax T1-weighted post-contrast 5mm B30f", "MR Brain w/wo", "3.0T T2* FLAIR",
     "Abdomen Pelvis portal venous phase 2.5 mm", "CSPINE sagittal STIR", "Follow-up 2.5cm nodule, LUL"],
)
def test_vocabulary_is_kept_verbatim(text: str) -> None:
    assert clean_text(text) == text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("PHI3F9A2C1B", ""),
        ("CT for Zyxwvut", "CT for"),
        ("Axial PHI3F9A2C1B chest", "Axial chest"),
        ("(MRN 12345678): 26 mm lesion, compared with the study of accession ACC123.",
         "26 mm lesion, compared with the study of accession"),
        ("Discussed with ^^H^.", "Discussed with"),
        ("Smith^John", ""),
        ("nodule (Qwertina) right", "nodule right"),
        ("seen 12/03 and 2020-01-10 at 10:15", "seen and at"),
        ("call 555-123-4567 or jdoe@example.org", "or"),
        ("Schädel nativ", ""),
        ("chest - PHI0000AAAA - abdomen", "chest - abdomen"),
    ],
)
def test_unknown_words_tokens_numbers_and_name_fragments_are_dropped(text: str, expected: str) -> None:
    assert clean_text(text) == expected


def test_numbers_short_or_with_units_only() -> None:
    assert clean_text("26 mm 120 kVp 512x512 1st") == "26 mm 120 kVp 512x512 1st"
    assert clean_text("1234 56789 0.625") == "0.625"  # long numbers can be IDs, dates or phone numbers


def test_vocabulary_and_schemes_are_versioned_data() -> None:
    raw = resources.read_json("deid", "clean_vocabulary.json")
    assert raw["version"] == vocabulary().version and raw["source"]
    schemes = resources.read_json("deid", "coding_schemes.json")
    assert schemes["source"].startswith("DICOM PS3.16")
    assert all(word == word.casefold() for group in raw["words"].values() for word in group)


@pytest.mark.parametrize("scheme", ["DCM", "SCT", "SRT", "LN", "RADLEX", "UCUM", "FMA", "NCIt", "NCDR [2.0b]"])
def test_standard_schemes(scheme: str) -> None:
    assert is_standard_scheme(scheme)


@pytest.mark.parametrize("scheme", ["99LH", "99ACME", "L", "LOCAL", "", "ACMEHOSP"])
def test_private_and_local_schemes(scheme: str) -> None:
    assert not is_standard_scheme(scheme)


def _with_codes() -> Dataset:
    ds = make_ct()
    local = Dataset()
    local.CodeValue, local.CodingSchemeDesignator, local.CodeMeaning = "P1", "99LOCAL", "CT chest for Plumbot"
    standard = Dataset()
    standard.CodeValue, standard.CodingSchemeDesignator, standard.CodeMeaning = "51185008", "SCT", "Thorax"
    ds.AnatomicRegionSequence = Sequence([standard])
    ds.ProcedureCodeSequence = Sequence([local])
    return ds


def test_code_meanings_by_scheme_under_the_basic_profile() -> None:
    ds = out(run(_with_codes()))
    assert ds.AnatomicRegionSequence[0].CodeMeaning == "Thorax"
    local = ds.ProcedureCodeSequence[0]
    assert local.CodeMeaning == REDACTED_MEANING and local.CodeValue == "P1"


def test_local_code_meanings_are_cleaned_under_clean_descriptors() -> None:
    ds = out(run(_with_codes(), "clean-descriptors"))
    assert ds.ProcedureCodeSequence[0].CodeMeaning == "CT chest for"
    assert ds.AnatomicRegionSequence[0].CodeMeaning == "Thorax"


def test_clean_falls_back_to_the_basic_action_when_nothing_is_left() -> None:
    ds = make_ct(StudyDescription="PHI0123ABCD", SeriesDescription="Axial PHI0123ABCE")
    ds.GraphicAnnotationSequence = Sequence([Dataset()])
    ds.GraphicAnnotationSequence[0].UnformattedTextValue = "Plumbot"
    result = out(run(ds, "clean-descriptors", "clean-graphics"))
    assert "StudyDescription" not in result  # Basic Profile X
    assert result.SeriesDescription == "Axial"
    assert result.GraphicAnnotationSequence[0].UnformattedTextValue == "ANONYMIZED"  # Basic Profile D


def test_sr_text_is_cleaned_with_the_allowlist() -> None:
    ds = make_ct(SOPClassUID="1.2.840.10008.5.1.4.1.1.88.11", Modality="SR")
    del ds.PixelData
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    concept = Dataset()
    concept.CodeValue, concept.CodingSchemeDesignator, concept.CodeMeaning = "121073", "DCM", "Impression"
    texts = ["26 mm nodule, discussed with Dr Plumbot", "Plumbot"]
    items = []
    for text in texts:
        item = Dataset()
        item.RelationshipType, item.ValueType, item.TextValue = "CONTAINS", "TEXT", text
        item.ConceptNameCodeSequence = Sequence([concept])
        items.append(item)
    ds.ValueType = "CONTAINER"
    ds.ContentSequence = Sequence(items)
    result = out(run(ds, "clean-structured-content"))
    assert [i.TextValue for i in result.ContentSequence] == ["26 mm nodule, discussed with Dr", "ANONYMIZED"]


def test_same_input_same_bytes() -> None:
    first = run(_with_codes(), "clean-descriptors", "clean-structured-content", "clean-graphics")
    again = run(_with_codes(), "clean-descriptors", "clean-structured-content", "clean-graphics")
    assert first.data is not None and first.data == again.data
