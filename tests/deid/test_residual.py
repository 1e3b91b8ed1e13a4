"""The residual-PHI scan quarantines a planted leftover and names the tag path, never the value."""

from __future__ import annotations

import random

from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from test_engine import make_ct, run

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
