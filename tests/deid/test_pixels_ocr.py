"""OCR verification of masked frames (the optional ``[ocr]`` extra: rapidocr + onnxruntime)."""

from __future__ import annotations

from pathlib import Path

import pydicom
import pytest
from corpora import DEID_DATA

from lakehouse.deid import ocr
from lakehouse.deid.pixels import clean_pixel_data
from lakehouse.errors import PixelCleaningError

pytestmark = pytest.mark.skipif(
    not ocr.available(), reason="the [ocr] extra (rapidocr, onnxruntime) is not installed"
)

ULTRASOUNDS = DEID_DATA / "ultrasounds"


@pytest.mark.parametrize("name", ["GREYSCALE_IMAGE.dcm", "RGB_IMAGE.dcm"])
def test_ocr_reads_the_burned_in_identifiers_before_and_none_after(name: str) -> None:
    ds = pydicom.dcmread(ULTRASOUNDS / name)
    identifiers = ocr.header_identifiers(ds)
    with pytest.raises(PixelCleaningError) as caught:
        ocr.verify_no_identifying_text([ds.pixel_array], identifiers)
    assert caught.value.code == "ocr_text_found"

    assert clean_pixel_data(ds, ocr=True) == "masked"
    assert ds.BurnedInAnnotation == "NO"
    assert ocr.read_text(ds.pixel_array), "technical screen text (probe, gain) is still read"


def test_a_mask_that_misses_the_text_is_caught_without_revealing_it(tmp_path: Path) -> None:
    rules = tmp_path / "masks.json"
    rules.write_text(
        '{"version": 1, "rules": [{"id": "wrong-corner", "modality": "US", "units": "pixels",'
        ' "rectangles": [[0, 700, 10, 768]]}]}'
    )
    ds = pydicom.dcmread(ULTRASOUNDS / "RGB_IMAGE.dcm")
    with pytest.raises(PixelCleaningError) as caught:
        clean_pixel_data(ds, str(rules), ocr=True)
    assert caught.value.code == "ocr_text_found"
    message = str(caught.value).upper()
    assert "MARY" not in message and "CLEVELAND" not in message and "2020" not in message
    assert "BurnedInAnnotation" not in ds, "nothing is marked clean when verification fails"
