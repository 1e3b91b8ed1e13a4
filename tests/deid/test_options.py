"""Option names: validation, Retain Safe Private accepted, CID 7050 codes."""

from __future__ import annotations

import pytest

from lakehouse.deid import parse_options
from lakehouse.deid.options import method_codes
from lakehouse.errors import InvalidDeidOption


def test_known_options_parse() -> None:
    assert parse_options(["retain-uids", " clean-descriptors ", ""]) == {"retain-uids", "clean-descriptors"}


def test_unknown_option_is_a_value_error_with_one_line() -> None:
    with pytest.raises(ValueError) as info:
        parse_options(["retain-everything"])
    assert isinstance(info.value, InvalidDeidOption) and "\n" not in str(info.value)
    assert "retain-everything" in str(info.value)


def test_date_options_exclude_each_other() -> None:
    with pytest.raises(InvalidDeidOption, match="mutually exclusive"):
        parse_options(["retain-full-dates", "retain-modified-dates"])


def test_retain_safe_private_is_accepted_now_that_table_e_3_10_1_ships() -> None:
    assert parse_options(["retain-safe-private"]) == {"retain-safe-private"}


def test_method_codes_are_the_profile_then_the_options() -> None:
    codes = method_codes(frozenset({"clean-pixel-data", "retain-uids"}))
    assert [c[0] for c in codes] == ["113100", "113110", "113101"]
    assert all(c[1] == "DCM" for c in codes)
