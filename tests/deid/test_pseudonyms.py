"""Keyed pseudonyms and date offsets: format, determinism across processes, key separation."""

from __future__ import annotations

import subprocess
import sys

from lakehouse.deid import date_offset_days, pseudonymize_id, pseudonymize_uid
from lakehouse.deid.pseudonyms import shift_da, shift_dt

KEY = b"k" * 32


def test_uid_pseudonym_is_a_2_25_uid_of_128_bits() -> None:
    uid = pseudonymize_uid("1.2.3.4", KEY)
    assert uid.startswith("2.25.") and len(uid) <= 64
    assert 0 < int(uid[5:]) < 2**128 and not uid[5:].startswith("0")


def test_same_input_same_output_across_processes() -> None:
    script = ("from lakehouse.deid import *; k=b'k'*32; "
              "print(pseudonymize_uid('1.2.3.4', k), pseudonymize_id('PID1', k, 'patient'), "
              "date_offset_days('X', k))")
    there = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout.split()
    assert there == [pseudonymize_uid("1.2.3.4", KEY), pseudonymize_id("PID1", KEY, "patient"),
                     str(date_offset_days("X", KEY))]


def test_different_keys_and_kinds_are_unlinkable() -> None:
    assert pseudonymize_uid("1.2.3", KEY) != pseudonymize_uid("1.2.3", b"j" * 32)
    assert pseudonymize_id("A1", KEY, "patient") != pseudonymize_id("A1", KEY, "accession")
    token = pseudonymize_id("A1", KEY, "patient")
    assert len(token) == 16 and token.isalnum()


def test_date_offset_is_never_zero_and_within_ten_years() -> None:
    offsets = {date_offset_days(f"p{i}", KEY) for i in range(200)}
    assert all(-3652 <= o <= -1 for o in offsets) and len(offsets) > 100


def test_shifting_dates_ranges_and_datetimes() -> None:
    assert shift_da("20200301", -1) == "20200229"
    assert shift_da("20200101-20200201", -1) == "20191231-20200131"
    assert shift_da("garbage", -1) is None
    assert shift_dt("20200101120000.5-0500", -1) == "20191231120000.5-0500"
    assert shift_dt("202003", -1) == "202002"
