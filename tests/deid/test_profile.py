"""Invariants of the vendored PS3.15 Table E.1-1 / E.3.4-1 data and how codes resolve."""

from __future__ import annotations

from lakehouse import resources
from lakehouse.deid.options import option_catalog
from lakehouse.deid.profile import ACTION_CODES, load_profile, resolve, resolved_profile

RAW = resources.read_json("deid", "ps315_2026d.json")


def test_table_has_657_rows_edition_and_source() -> None:
    assert len(RAW["rules"]) == 657
    assert RAW["source"]["edition"] == "2026d" and RAW["source"]["url"].startswith("https://dicom.nema.org/")
    assert resources.read_text("deid", "ps315_2026d.NOTICE.md").count("MIT License") == 1


def test_only_allowed_action_codes() -> None:
    for row in RAW["rules"] + RAW["content_items"]:
        parts = set(row["basic"].split("/"))
        assert parts <= ACTION_CODES | {"U*"}, row["basic"]
        assert set(row["options"].values()) <= ACTION_CODES


def test_pattern_rows_are_present() -> None:
    tags = {row["tag"] for row in RAW["rules"]}
    assert {"50xxxxxx", "60xx3000", "60xx4000", "PRIVATE"} <= tags
    profile = load_profile()
    assert set(profile.patterns) == {"50xxxxxx", "60xx3000", "60xx4000", "PRIVATE"}
    assert len(profile.rules) == 653 and sum(map(len, profile.content_items.values())) == len(RAW["content_items"])


def test_option_columns_match_the_table() -> None:
    columns = {o.column for o in option_catalog().options.values() if o.column}
    assert columns == set(RAW["option_keys"])


def test_combined_codes_resolve_to_one_action() -> None:
    basic = resolved_profile(frozenset())
    assert basic.actions[0x00100020] == "D"  # Patient ID Z/D: token
    assert basic.actions[0x00080080] == "X"  # Institution Name X/Z/D, Type 3: removed
    assert basic.actions[0x00081140] == "U*"  # Referenced Image Sequence: kept, UIDs replaced
    assert set(basic.actions.values()) <= ACTION_CODES | {"U*"}
    assert basic.private == "X" and basic.curve == "X" and basic.overlay_data == "X"


def test_date_rows_follow_only_the_date_options() -> None:
    rule = load_profile().rules[0x0018700C]  # Date of Last Detector Calibration: X/D, device K, dates K/C
    assert resolve(rule, frozenset({"retain_device_identity"})) == "X"
    assert resolve(rule, frozenset({"retain_device_identity", "retain_longitudinal_modified_dates"})) == "C"
    assert resolve(rule, frozenset({"retain_longitudinal_full_dates"})) == "K"


def test_options_replace_basic_actions() -> None:
    columns = frozenset({"clean_descriptors", "clean_graphics", "retain_uids"})
    resolved = resolved_profile(columns)
    assert resolved.actions[0x00081030] == "C" and resolved.curve == "C" and resolved.actions[0x00080018] == "K"
