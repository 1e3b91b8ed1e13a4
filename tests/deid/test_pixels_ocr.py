"""The OCR layer on real burned-in text (deid-data ultrasounds): it reads the identifiers before
cleaning, detects the regions that hold them, and reads nothing after cleaning."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest
from corpora import DEID_DATA

from lakehouse.deid import ocr
from lakehouse.deid.pixels import clean_pixel_data

ULTRASOUNDS = DEID_DATA / "ultrasounds"


def test_rapidocr_is_a_runtime_dependency() -> None:
    assert ocr.available()


@pytest.mark.parametrize("name", ["GREYSCALE_IMAGE.dcm", "RGB_IMAGE.dcm"])
def test_ocr_reads_the_burned_in_identifiers_before_and_nothing_after(name: str) -> None:
    ds = pydicom.dcmread(ULTRASOUNDS / name)
    before = ds.pixel_array
    assert ocr.identifying_kinds(ocr.read_text(before), ocr.header_identifiers(ds)) >= {"identifier", "date"}
    regions = ocr.detect_text(before)
    assert any(top < 20 for _, top, _, _ in regions), "the header line is detected"

    assert clean_pixel_data(ds) == "masked"
    assert ds.BurnedInAnnotation == "NO"
    after = ds.pixel_array
    assert ocr.read_text(after) == [] and ocr.detect_text(after) == []
    changed = (np.asarray(after) != before).reshape(*before.shape[:2], -1).any(axis=-1)
    assert changed.mean() < 0.2, "text regions are blanked, not the image"


def test_identifying_kinds_name_kinds_not_text() -> None:
    lines = ["ZZZ TEST PATIENT 00079241539", "DOB: 08/29/1951", "L12-5 36Hz"]
    assert ocr.identifying_kinds(lines, {"ZZZTEST"}) == {"identifier", "date", "digit_run"}
    assert ocr.identifying_kinds(["L12-5 36Hz", "TIS0.0 MI 0.6"], {"ZZZTEST"}) == set()
