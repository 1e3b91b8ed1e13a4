"""The quality gate over real flattened batches: a good batch passes, each kind of bad batch fails."""

from __future__ import annotations

import json
import random
import re
from collections.abc import Callable
from datetime import date, timedelta

import pyarrow as pa
import pytest
from pydicom import Dataset
from pydicom.dataset import FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian

from lakehouse.flatten import FlatRows, Provenance, flatten, rows_to_tables
from lakehouse.quality import GateResult, run_gate
from lakehouse.quality.forbidden import ForbiddenMatcher

PROVENANCE = Provenance("run-q", "req-q", "proj", "PS3.15-2026d basic", ())
# The run's source identifiers: what the engine hands over as never-to-publish.
SOURCE_IDS = {
    "1.2.826.0.1.3680043.8.498.1001",  # a source Study Instance UID
    "1.2.826.0.1.3680043.8.498.1002",  # a source SOP Instance UID
    "DOE^JOHN",
    "MRN-0042",
    "ACC998877",
    "",  # empty identifiers are ignored, not matched against every empty cell
}


def instance(study: int, series: int, sop: int, **attrs: object) -> Dataset:
    """A small de-identified CT instance with pseudonymous 2.25 UIDs."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = CTImageStorage
    ds.StudyInstanceUID = f"2.25.{1000 + study}"
    ds.SeriesInstanceUID = f"2.25.{2000 + series}"
    ds.SOPInstanceUID = f"2.25.{3000 + sop}"
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.FrameOfReferenceUID = f"2.25.{4000 + series}"
    ds.PatientID = f"PSEUDO{study}"
    ds.PatientName = "ANON"
    ds.PatientIdentityRemoved = "YES"
    ds.StudyDate = "20190305"
    ds.SeriesDate = "20190305"
    ds.ContentDate = "20190305"
    ds.StudyTime = "101500"
    ds.Modality = "CT"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.InstanceNumber = sop
    ds.Rows, ds.Columns = 4, 4
    ds.PixelSpacing = [0.5, 0.5]
    ref = Dataset()
    ref.ReferencedSOPClassUID = CTImageStorage
    ref.ReferencedSOPInstanceUID = f"2.25.{3000 + sop + 100}"
    ds.ReferencedImageSequence = [ref]
    ds.add_new(0x7FE00010, "OW", b"\x00" * 32)
    for keyword, value in attrs.items():
        setattr(ds, keyword, value)
    return ds


def rows(ds: Dataset) -> FlatRows:
    return flatten(
        ds,
        PROVENANCE,
        object_key=f"proj/objects/{ds.SOPInstanceUID}.dcm",
        object_sha256="cd" * 32,
        object_size=2048,
    )


def good_batch(**changes: object) -> list[FlatRows]:
    """Three instances: two in one series of study 1, one in study 2. ``changes`` go to the last."""
    return [rows(instance(1, 1, 1)), rows(instance(1, 1, 2)), rows(instance(2, 2, 3, **changes))]


def gate(batch: list[FlatRows], expected: int | None = None) -> GateResult:
    return run_gate(
        rows_to_tables(batch),
        forbidden_values=SOURCE_IDS,
        expected_instances=len(batch) if expected is None else expected,
    )


def assert_no_values(result: GateResult) -> None:
    text = json.dumps(result.report) + " ".join(result.failures)
    for value in SOURCE_IDS - {""}:
        assert value not in text


def test_good_batch_passes_with_a_json_report() -> None:
    result = gate(good_batch())
    assert result.passed, result.failures
    assert result.failures == []
    assert result.report["rows"] == {
        "studies": 2,
        "series": 2,
        "instances": 3,
        "attributes": 3 * 22,
    }  # 21 attributes + 1 in the sequence
    kinds = {(c["table"], c["expectation"]) for c in result.report["checks"]}
    assert ("attributes", "expect_compound_columns_to_be_unique") in kinds
    assert ("instances", "no_source_identifier_in_text") in kinds
    assert ("instances", "expect_table_row_count_to_equal") in kinds
    written = json.loads(json.dumps(result.report))  # the export stores it as JSON as it is
    assert written["passed"] is True and written["suite"] == "research"
    assert_no_values(result)


BAD_BATCHES: dict[str, tuple[Callable[[], list[FlatRows]], int | None, set[str]]] = {
    "duplicate key": (
        lambda: [*good_batch(), rows(instance(2, 2, 3))],
        None,
        {
            "instances/expect_column_values_to_be_unique/SOPInstanceUID",
            "attributes/expect_compound_columns_to_be_unique/SOPInstanceUID+path",
        },
    ),
    "non-2.25 UID": (
        lambda: good_batch(SeriesInstanceUID="1.3.6.1.4.1.5962.99.1"),
        None,
        {
            "series/expect_column_values_to_match_regex/SeriesInstanceUID",
            "instances/expect_column_values_to_match_regex/SeriesInstanceUID",
        },
    ),
    "source identifier as a value": (
        lambda: good_batch(StudyDescription="DOE^JOHN"),
        None,
        {
            "studies/expect_column_values_to_not_be_in_set/StudyDescription",
            "attributes/expect_column_values_to_not_be_in_set/value_text",
            "attributes/no_source_identifier_in_text/value_text",
            "instances/no_source_identifier_in_text/header_json",
        },
    ),
    "source identifier inside text": (
        lambda: good_batch(ImageComments="compare with prior ACC998877 please"),
        None,
        {
            "instances/no_source_identifier_in_text/header_json",
            "attributes/no_source_identifier_in_text/value_text",
        },
    ),
    "source UID in a nested sequence": (
        lambda: [
            *good_batch()[:2],
            rows(_with_reference(instance(2, 2, 3), "1.2.826.0.1.3680043.8.498.1002")),
        ],
        None,
        {
            "instances/no_source_identifier_in_text/header_json",
            "attributes/expect_column_values_to_not_be_in_set/value_text",
            "attributes/no_source_identifier_in_text/value_text",
        },
    ),
    "source identifier in a list column": (
        lambda: good_batch(ImageType=["ORIGINAL", "MRN-0042"]),
        None,
        {
            "instances/expect_column_values_to_not_be_in_set/ImageType",
            "instances/no_source_identifier_in_text/header_json",
            "attributes/no_source_identifier_in_text/value_text",
        },
    ),
    "wrong count": (good_batch, 4, {"instances/expect_table_row_count_to_equal"}),
    "date before 1900": (
        lambda: good_batch(StudyDate="18500101"),
        None,
        {"studies/expect_column_values_to_be_between/StudyDate"},
    ),
    "date in the future": (
        lambda: good_batch(ContentDate=(date.today() + timedelta(days=30)).strftime("%Y%m%d")),
        None,
        {"instances/expect_column_values_to_be_between/ContentDate"},
    ),
}


def _with_reference(ds: Dataset, source_uid: str) -> Dataset:
    ds.ReferencedImageSequence[0].ReferencedSOPInstanceUID = source_uid
    return ds


@pytest.mark.parametrize("kind", list(BAD_BATCHES))
def test_bad_batch_fails(kind: str) -> None:
    make, expected, failures = BAD_BATCHES[kind]
    batch = make()
    result = gate(batch, expected)
    assert not result.passed
    assert set(result.failures) == failures
    assert result.report["passed"] is False
    assert_no_values(result)


def test_missing_table_fails() -> None:
    tables = rows_to_tables(good_batch())
    del tables["series"]
    result = run_gate(tables, forbidden_values=SOURCE_IDS, expected_instances=3)
    assert not result.passed
    assert "series/table_present" in result.failures


def test_matcher_finds_whole_identifiers_only() -> None:
    matcher = ForbiddenMatcher({"1.2.3", "O'Brien^Pat", "Müller^Hans", "two words"})
    assert matcher.found_in('{"Value":["1.2.3"]}')
    assert matcher.found_in("a\\1.2.3\\b")
    assert not matcher.found_in('{"Value":["1.2.3.4"]}')  # a different UID
    assert matcher.found_in('{"Alphabetic":"O\'Brien^Pat"}')
    assert matcher.found_in('"Müller^Hans"')
    assert matcher.found_in("said two words today")
    assert not matcher.found_in(None)
    assert matcher.count_rows(["1.2.3", "x", None, "1.2.3 again"]) == 2


def test_matcher_takes_identifiers_with_regex_characters_literally() -> None:
    """Identifiers with a delimiter are one RE2 alternation: each must match as written."""
    odd = ["a.b (c)*", "x+y [z]", "tab\there", "50% off $5", "back\\slash |pipe|", "Ωmega name"]
    matcher = ForbiddenMatcher(odd)
    for value in odd:
        assert matcher.found_in(f"before {value} after"), value
        assert matcher.found_in(json.dumps({"v": value}, ensure_ascii=False)), value  # as header JSON has it
    assert not matcher.found_in("aXb (c)")  # "." is not any character
    assert not matcher.found_in("a.b (cccc)")  # "*" is not a repetition
    assert not matcher.found_in("x+y z")


def test_matcher_cuts_text_at_unicode_whitespace_like_python() -> None:
    """Tokens are cut in Arrow at the characters Python's ``\\s`` (``str.isspace``) and the
    JSON/DICOM punctuation delimit; an identifier holding such a character is a substring."""
    rng = random.Random(7)
    spaces = ["\u3000", "\xa0", "\x1c", "\u2028", "\x0b", "\x85", " ", "\t"]
    alphabet = [*"ab1.^-'é", *spaces, *'"\\,:{}[]']
    ids = {"".join(rng.choice("ab1.^-é") for _ in range(rng.randint(1, 4))) for _ in range(60)}
    matcher = ForbiddenMatcher(ids)
    texts = ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 12))) for _ in range(5000)]
    python_tokens = re.compile(r'[^\s"\\,:{}\[\]]+')
    expected = [not matcher.tokens.isdisjoint(python_tokens.findall(t)) for t in texts]
    assert matcher.hits(pa.array(texts, pa.string())).to_pylist() == expected
    assert sum(expected) > 100
    for space in spaces:  # a name written with a no-break (or any Unicode) space is still found
        assert ForbiddenMatcher({f"Jane{space}Doe"}).found_in(json.dumps({"v": f"by Jane{space}Doe"}, ensure_ascii=False))


def test_matcher_counts_rows_of_a_column_with_repeats_and_nulls() -> None:
    matcher = ForbiddenMatcher({"DOE^JANE", "Jane Doe"})
    column = pa.chunked_array([["ok", None, "by Jane Doe"], ["DOE^JANE", "ok", "by Jane Doe", ""]])
    assert matcher.count_rows(column) == 3
    assert matcher.count_rows(pa.chunked_array([["ok", None]])) == 0


def test_gate_without_identifiers_still_checks_keys() -> None:
    clean = run_gate(rows_to_tables(good_batch()), forbidden_values=set(), expected_instances=3)
    assert clean.passed and clean.report["forbidden_identifier_count"] == 0
    broken = run_gate(
        rows_to_tables(good_batch(SOPInstanceUID="2.25.3001")), forbidden_values=set(), expected_instances=3
    )
    assert "instances/expect_column_values_to_be_unique/SOPInstanceUID" in broken.failures
