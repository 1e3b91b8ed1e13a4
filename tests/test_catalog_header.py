"""Header-only parsing: both parsers agree, ranges grow only as needed, limits hold."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest
from pydicom import dcmread, dcmwrite
from pydicom.data import get_testdata_files

from lakehouse.dicom import header
from lakehouse.dicom.header import read_header
from lakehouse.synth import generate_archive


def _corpus() -> list[tuple[str, bytes]]:
    files = [(Path(f).name, Path(f).read_bytes()) for f in get_testdata_files() if os.path.isfile(f)]
    return files + list(generate_archive(patients=3, seed=1))


def test_fast_walk_and_pydicom_give_the_same_catalog_fields() -> None:
    compared = 0
    for name, data in _corpus():
        try:
            fast = header._scan_prefix(data, len(data))
        except header._Fallback:
            continue  # pydicom alone handles it
        except (header._Truncated, header._AbsurdLength):
            assert header._parse_with_pydicom(data, len(data)).status == "error", name
            continue
        slow = header._parse_with_pydicom(data, len(data))
        assert (fast.status, fast.code, fast.transfer_syntax_uid) == (
            slow.status,
            slow.code,
            slow.transfer_syntax_uid,
        ), name
        assert fast.fields == slow.fields, name
        compared += 1
    assert compared > 200


class CountingFetch:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.ranges: list[tuple[int, int]] = []

    def __call__(self, start: int, length: int) -> bytes:
        self.ranges.append((start, length))
        return self.data[start : start + length]


def _ct(size: int) -> bytes:
    return next(data for _, data in generate_archive(patients=1, seed=2, ct_size=size, ct_slices=1))


def test_one_range_when_the_header_fits() -> None:
    data = _ct(512)
    fetch = CountingFetch(data)
    result = read_header(fetch, len(data), header_bytes=65536)
    assert result.status == "ok" and fetch.ranges == [(0, 65536)] and result.bytes_read == 65536


def test_ranges_extend_the_prefix_until_the_header_fits() -> None:
    data = _ct(512)
    fetch = CountingFetch(data)
    result = read_header(fetch, len(data), header_bytes=512)
    assert result.status == "ok" and result.fields["rows"] == 512
    assert len(fetch.ranges) > 1
    assert all(start == sum(n for _, n in fetch.ranges[:i]) for i, (start, _) in enumerate(fetch.ranges))
    assert result.bytes_read < len(data) / 10  # the header, not the pixels


def test_header_longer_than_the_limit_is_an_error() -> None:
    ds = dcmread(io.BytesIO(_ct(64)))
    ds.add_new(0x00091010, "OB", bytes(300_000))
    out = io.BytesIO()
    dcmwrite(out, ds, enforce_file_format=True)
    data = out.getvalue()
    result = read_header(CountingFetch(data), len(data), header_bytes=65536, max_header_bytes=131072)
    assert (result.status, result.code) == ("error", "header_too_long")
    assert read_header(CountingFetch(data), len(data), max_header_bytes=1 << 20).status == "ok"


def test_object_that_shrinks_while_read_is_truncated() -> None:
    data = _ct(512)

    def shrinking(start: int, length: int) -> bytes:
        return data[start : start + length] if start == 0 else b""

    result = read_header(shrinking, len(data), header_bytes=256)
    assert (result.status, result.code) == ("error", "truncated")


@pytest.mark.parametrize("cut", [100, 200, 131, 2000])
def test_any_cut_of_a_valid_object_is_an_error_row_not_a_crash(cut: int) -> None:
    data = _ct(64)[:cut]
    result = read_header(CountingFetch(data), len(data))
    assert result.status == "error" and result.code in {"not_dicom", "truncated", "unreadable"}
