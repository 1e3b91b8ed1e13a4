"""The residual-PHI scan quarantines a planted leftover and names the tag path, never the value."""

from __future__ import annotations

import random

from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from test_engine import make_ct, out, run

from lakehouse.deid.residual import Identifiers, Scanner


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
    ds.WindowCenterWidthExplanation = "as on 2020-01-10"  # allowlisted text, kept: the scan backs it
    assert run(ds).tag_path == "(0028,1055)"
    ds = make_ct()
    ds.add_new(0x00180022, "CS", "SEE 1.2.826.0.1.3680043.8.498.1001")  # source SOP UID in a kept CS
    assert run(ds).reason == "residual_phi"


def test_identifier_like_patterns_in_free_text() -> None:
    ds = make_ct()
    ds.ViewName = "call 555-123-4567"  # allowlisted text, kept: the scan backs it
    result = run(ds)
    assert (result.reason, result.tag_path) == ("residual_phi", "(0008,2127)")


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


# Letters IGNORECASE matches to ASCII ones: dotted I, dotless i, long s, Kelvin sign.
NON_ASCII_FORMS = str.maketrans({"i": "\u0131", "I": "\u0130", "s": "\u017f", "k": "\u212a", "K": "\u212a"})


def test_fast_matching_equals_the_full_alternation_by_definition() -> None:
    """The split matcher (digit/dot runs, whole word runs, cached regex of the rest) cuts out
    exactly what one case-insensitive alternation of all literals would, on random text that
    mixes case, the four non-ASCII letters IGNORECASE folds to ASCII, digits, dots and separators."""
    rng = random.Random(20261128)
    alphabet = "abSNkKi0123456789..-  ^/\u0130\u0131\u017f\u212a"
    for _ in range(400):
        literals = {
            "".join(rng.choice(alphabet) for _ in range(rng.randint(3, 7))).strip() for _ in range(rng.randint(1, 6))
        }
        literals = {literal for literal in literals if len(literal) >= 3}
        if not literals:
            continue
        scanner = Scanner(frozenset(literals), frozenset(), frozenset())
        for _ in range(20):
            text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40)))
            # Plant a literal half the time, in random case, so there is something to find.
            if rng.random() < 0.5:
                planted = rng.choice(sorted(literals))
                planted = "".join(c.upper() if rng.random() < 0.5 else c.lower() for c in planted)
                planted = planted.translate(rng.choice([{}, NON_ASCII_FORMS]))
                cut = rng.randint(0, len(text))
                text = text[:cut] + planted + text[cut:]
            assert scanner.regex is not None
            assert scanner._cut_literals(text) == scanner.regex.sub("", text), (sorted(literals), text)
            assert (scanner._next_literal(text, 0) is not None) == (scanner.regex.search(text) is not None)
    word = Scanner(frozenset({"SN4535606"}), frozenset(), frozenset())
    assert word._next_word("id sn4535606.", 0) == (3, 12)
    assert word._next_word("xSN4535606", 1) is None  # inside a longer run: not a match
    assert word.hit("LO", "\u017fN4535606") and not word.hit("LO", "SN45356067")


def test_the_engines_own_dummy_date_is_never_a_hit() -> None:
    # A source whose birth date equals the dummy date: the dummy Content Date is not a leak.
    result = run(make_ct(PatientBirthDate="19000101"))
    assert result.outcome == "deidentified", (result.reason, result.tag_path)


def test_a_name_component_that_is_a_word_counts_only_in_the_whole_name() -> None:
    """pydicom's eCT_Supplemental: patient "Perfusion^MCA Stroke", Image Type PERFUSION."""
    ds = make_ct(PatientName="Perfusion^MCA Stroke", ImageType=["DERIVED", "PRIMARY", "PERFUSION"])
    assert run(ds).outcome == "deidentified"
    ds.ConvolutionKernel = "PERFUSION"  # a word in free text: not a leak on its own
    assert run(ds).outcome == "deidentified"
    ds.ViewName = "MCA Stroke Perfusion"  # the whole name, given names first: a leak
    assert (run(ds).reason, run(ds).tag_path) == ("residual_phi", "(0008,2127)")


def test_lone_name_components_do_not_count_in_coded_values() -> None:
    """pydicom's reportsi (observer "Enter text", Value Type TEXT) and test-SR (patient
    "Test^S R", Coding Scheme Designator TEST)."""
    ds = make_ct(PatientName="Test^Enter text")
    code = Dataset()
    code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = "1111", "TEST", "Diagnosis"
    ds.AnatomicRegionSequence = Sequence([code])
    ds.add_new(0x0040A040, "CS", "TEXT")  # Value Type
    assert run(ds).outcome == "deidentified"
    ds.ViewName = "TEST"  # not a vocabulary word, in free text: still a leak
    assert run(ds).reason == "residual_phi"


def test_coded_values_still_catch_identifiers() -> None:
    ds = make_ct()
    ds.add_new(0x00180022, "CS", "PIDTOKEN7781")  # the Patient ID in a CS value
    assert run(ds).tag_path == "(0018,0022)"


def test_ordinary_words_in_a_name_are_not_leaks() -> None:
    ds = make_ct(PatientName="Compressed^Abdomen", StudyDescription="CT Abdomen")
    ds.ViewName = "Lossy compressed"
    result = run(ds, "clean-descriptors")
    assert result.outcome == "deidentified", (result.reason, result.tag_path)
    assert out(result).StudyDescription == "CT Abdomen"
    ds.ViewName = "Compressed Abdomen"  # the whole name, in the written order: a leak
    assert run(ds, "clean-descriptors").reason == "residual_phi"
