"""The residual-PHI scan quarantines a planted leftover and names the tag path, never the value."""

from __future__ import annotations

from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from test_engine import make_ct, run

from lakehouse.deid.residual import Identifiers


def test_name_left_in_a_kept_nested_attribute_is_caught_with_its_path() -> None:
    ds = make_ct()
    item = Dataset()
    item.CodeValue = "X1"
    item.CodingSchemeDesignator = "SCT"
    item.CodeMeaning = "scan of qwertina"  # a standard scheme's Code Meaning is kept, so the scan must see it
    ds.AnatomicRegionSequence = Sequence([item])
    result = run(ds)
    assert (result.outcome, result.reason) == ("quarantined", "residual_phi")
    assert result.tag_path == "(0008,2218)[0].(0008,0104)"
    assert result.data is None and "qwertina" not in repr(result.report).lower()


def test_original_date_and_uid_in_kept_attributes_are_caught() -> None:
    ds = make_ct()
    ds.add_new(0x00141020, "DA", "20200110")  # Expiry Date: not in the table, kept as is
    assert run(ds).tag_path == "(0014,1020)"
    ds = make_ct()
    ds.add_new(0x00081150, "UI", "1.2.826.0.1.3680043.8.498.9")
    ds.add_new(0x00189517, "DT", "20200110")
    ds.add_new(0x00180022, "CS", "SEE 1.2.826.0.1.3680043.8.498.1001")  # source SOP UID in kept text
    assert run(ds).reason == "residual_phi"


def test_identifier_like_patterns_in_free_text() -> None:
    ds = make_ct()
    ds.add_new(0x00080108, "LT", "call 555-123-4567")  # Extended Code Meaning: not in the table
    result = run(ds)
    assert (result.reason, result.tag_path) == ("residual_phi", "(0008,0108)")


def test_scanner_is_one_regex_plus_sets() -> None:
    ids = Identifiers()
    ids.add_name("Doe^Jo^^^")
    ids.add_id("PID-77")
    ids.add_date("20200101")
    scanner = ids.compile(dates_kept=False, exclude_dates=set())
    assert scanner.hit("LO", "for doe") and not scanner.hit("LO", "Doenut")
    assert "Jo" not in scanner.regex.pattern  # components shorter than 3 are not identifiers
    assert scanner.hit("DA", "20200101") and scanner.hit("LT", "on 2020-01-01")
    assert scanner.clean("PID-77 seen by Doe") == "seen by"
