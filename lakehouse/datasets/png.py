"""One PNG per frame of an image object, as a labeling tool shows it.

Grey images go stored values -> Modality LUT (rescale, per frame for enhanced objects) -> window
-> 8 or 16 bit grey levels, MONOCHROME1 inverted so bright always means dense. The window is
a preset or explicit W/L, or with ``dicom`` the object's own VOI: its first Window Center/Width
and VOI LUT Function, else its VOI LUT table, else the frame's full value range (recorded as
the window used). Colour images (RGB, YBR decoded to RGB, PALETTE COLOR through its LUT) are
written as 8-bit RGB without a window. Bytes are deterministic: Pillow writes no time chunk.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
import pydicom
from PIL import Image
from pydicom.pixels import apply_color_lut, apply_voi

from lakehouse.datasets.frames import (
    frame_rescale,
    frame_voi,
    has_pixels,
    is_color,
    iter_frames,
    modality_values,
)
from lakehouse.datasets.model import Unconvertible
from lakehouse.datasets.windows import Window, apply_window

BITS = (8, 16)
# zlib level 1 (OpenCV's PNG default): zlib is nearly all of the time spent on a slice, and level 1
# is 3-4x faster than Pillow's default 6 for 5-20% more bytes on CT (bench_dataset.py measures it).
PNG_COMPRESS_LEVEL = 1


@dataclass(frozen=True)
class RenderedPng:
    frame: int  # 0-based
    data: bytes
    bits: int  # per sample: 8 or 16 for grey, always 8 for RGB
    window_center: float | None  # None for RGB and for a VOI LUT table
    window_width: float | None
    rows: int
    columns: int


def object_to_pngs(ds: pydicom.Dataset, window: Window, bits: int = 8) -> list[RenderedPng]:
    """Every frame of ``ds`` as a PNG; ``Unconvertible`` for a non-image or undecodable object."""
    if bits not in BITS:
        raise ValueError(f"PNG bits must be one of {BITS}")
    if not has_pixels(ds):
        raise Unconvertible("not_an_image", "the object carries no pixel data")
    photometric = str(ds.get("PhotometricInterpretation") or "").strip().upper()
    if is_color(ds):
        return [_rgb_png(i, _rgb8(ds, frame, photometric)) for i, frame in enumerate(iter_frames(ds))]
    if not photometric.startswith("MONOCHROME"):
        raise Unconvertible("unsupported_photometric", "the photometric interpretation is not supported")
    invert = photometric == "MONOCHROME1"
    return [_grey_png(ds, i, frame, window, bits, invert) for i, frame in enumerate(iter_frames(ds))]


def _grey_png(
    ds: pydicom.Dataset, index: int, stored: np.ndarray, window: Window, bits: int, invert: bool
) -> RenderedPng:
    slope, intercept = frame_rescale(ds, index)
    values, table = stored, "ModalityLUTSequence" in ds
    if table:  # a Modality LUT table, not a line: apply it before the window
        values, slope, intercept = modality_values(ds, stored, slope, intercept), 1.0, 0.0
    center, width, function = window.center, window.width, "LINEAR"
    if center is None or width is None:  # dicom: the object's own VOI
        center, width, function = frame_voi(ds, index)
    if center is not None and width is not None:
        grey = apply_window(values, center, width, function, bits, slope, intercept)
    elif "VOILUTSequence" in ds:
        grey = _voi_table(ds, values if table else modality_values(ds, stored, slope, intercept), bits)
    else:  # no VOI at all: the frame's full range, recorded as the window used
        low, high = sorted((float(values.min()) * slope + intercept, float(values.max()) * slope + intercept))
        center, width = (low + high) / 2.0, high - low
        grey = apply_window(values, center, width, "LINEAR_EXACT", bits, slope, intercept)
    if invert:
        grey = np.iinfo(grey.dtype).max - grey
    rows, columns = grey.shape
    return RenderedPng(index, _encode(Image.fromarray(grey)), bits, center, width, rows, columns)


def _voi_table(ds: pydicom.Dataset, values: np.ndarray, bits: int) -> np.ndarray:
    """The first VOI LUT table, its output (``LUTDescriptor`` bits) scaled to ``bits``."""
    lut_bits = int(ds.VOILUTSequence[0].LUTDescriptor[2]) or 16
    table = apply_voi(np.rint(values).astype(np.int32), ds, index=0).astype(np.float64)  # a LUT takes integers
    scaled = np.clip(table * (((1 << bits) - 1) / ((1 << lut_bits) - 1)), 0, (1 << bits) - 1)
    return np.rint(scaled).astype(np.uint8 if bits == 8 else np.uint16)


def _rgb8(ds: pydicom.Dataset, frame: np.ndarray, photometric: str) -> np.ndarray:
    if photometric == "PALETTE COLOR":
        frame = apply_color_lut(frame, ds)
    if frame.dtype == np.uint8:
        return frame
    depth = 16 if photometric == "PALETTE COLOR" else int(ds.get("BitsStored") or 16)
    return (frame.astype(np.uint32) >> max(depth - 8, 0)).astype(np.uint8)


def _rgb_png(index: int, rgb: np.ndarray) -> RenderedPng:
    rows, columns = rgb.shape[:2]
    return RenderedPng(index, _encode(Image.fromarray(np.ascontiguousarray(rgb))), 8, None, None, rows, columns)


def _encode(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
    return buffer.getvalue()
