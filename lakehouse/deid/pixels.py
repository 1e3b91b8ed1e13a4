"""Burned-in text: risk triage, then masking proved by OCR (PS3.15 E.1.1, Clean Pixel Data Option).

``burned_in_risk`` decides whether an object may carry identifying text in its pixels;
``clean_pixel_data`` removes it from every frame and writes the result back as native Explicit VR
Little Endian:

1. decode every frame (native, RLE, JPEG baseline/extended/lossless, JPEG-LS, JPEG 2000 through
   the pydicom pixel plugins pylibjpeg-libjpeg, pylibjpeg-openjpeg and pyjpegls);
2. blank the known-layout rectangles of ``schemas/deid/masks.json`` (the fast path);
3. run OCR text detection on every frame, blank each region it finds (with a margin) in every
   frame, and repeat; after at most ``MASK_ROUNDS`` rounds a last detection pass must find no
   text in any frame.

Anything that cannot be decoded, or where text is still found, raises ``PixelCleaningError`` with
a stable code; the dataset is left untouched in that case (changes are applied only at the end).

Risk triage, in order (documented choice where the issue is silent):

1. No (7FE0,0010/0008/0009) pixel data and no (0042,0011) Encapsulated Document → no risk.
2. Burned In Annotation (0028,0301) ``YES`` → risk; ``NO`` → no risk (the modality's word
   is trusted, as PS3.15 does).
3. Absent or any other value → risk when the modality is in ``BURNED_IN_MODALITIES``, the SOP
   class is a secondary capture, ultrasound, encapsulated document or video class, the
   transfer syntax is a video one, or neither Modality nor SOP Class UID is present
   (unknown objects are treated as risky).
"""

from __future__ import annotations

import re

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    JPEG2000,
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
    JPEGLossless,
    JPEGLosslessSV1,
    JPEGLSLossless,
    JPEGLSNearLossless,
    MPEGTransferSyntaxes,
    RLELossless,
)

from lakehouse.deid import ocr
from lakehouse.deid.masks import DEFAULT_MASK_RULES, MaskRule, load_mask_rules, mask_rectangles
from lakehouse.dicom.part10 import transfer_syntax_of
from lakehouse.errors import PixelCleaningError

__all__ = [
    "BURNED_IN_MODALITIES",
    "DEFAULT_MASK_RULES",
    "MASK_ROUNDS",
    "MaskRule",
    "PixelCleaningError",
    "burned_in_risk",
    "clean_pixel_data",
    "load_mask_rules",
    "mask_rectangles",
]

#: Modalities whose images commonly carry burned-in text: the issue's list (US, SC, XA, ES, OT)
#: plus XC (external-camera photographs of labelled specimens/screens) and DOC (documents).
BURNED_IN_MODALITIES = frozenset({"US", "SC", "XA", "ES", "OT", "XC", "DOC"})

#: Detect-and-mask rounds. One round leaves text only where masking a region reveals a
#: neighbour the detector had merged or missed (a marker letter beside a blanked label); later
#: rounds catch those.
MASK_ROUNDS = 3

_SECONDARY_CAPTURE_ROOT = "1.2.840.10008.5.1.4.1.1.7"  # SC and the multi-frame SC classes (.7.x)
_ENCAPSULATED_DOCUMENT_ROOT = "1.2.840.10008.5.1.4.1.1.104."  # PDF, CDA, STL, OBJ, MTL
_ULTRASOUND_CLASSES = frozenset(
    {
        "1.2.840.10008.5.1.4.1.1.6.1",  # Ultrasound Image Storage
        "1.2.840.10008.5.1.4.1.1.6.2",  # Enhanced US Volume Storage
        "1.2.840.10008.5.1.4.1.1.3.1",  # Ultrasound Multi-frame Image Storage
    }
)
_VIDEO_CLASSES = frozenset(
    {
        "1.2.840.10008.5.1.4.1.1.77.1.1.1",  # Video Endoscopic Image Storage
        "1.2.840.10008.5.1.4.1.1.77.1.2.1",  # Video Microscopic Image Storage
        "1.2.840.10008.5.1.4.1.1.77.1.4.1",  # Video Photographic Image Storage
    }
)
_PIXEL_TAGS = (0x7FE00010, 0x7FE00008, 0x7FE00009)
#: Transfer syntax → Lossy Image Compression Method (0028,2114) when it may have been lossy
#: (PS3.3 C.7.6.1.1.5: once lossy, always lossy); None for the lossless ones. Big endian
#: (retired) and video are not decoded.
_DECODABLE_SYNTAXES: dict[str, str | None] = {
    ImplicitVRLittleEndian: None,
    ExplicitVRLittleEndian: None,
    DeflatedExplicitVRLittleEndian: None,
    ExplicitVRBigEndian: None,  # retired (PS3.5 A.3), still in archives; written little endian
    RLELossless: None,
    JPEGBaseline8Bit: "ISO_10918_1",
    JPEGExtended12Bit: "ISO_10918_1",
    JPEGLossless: None,
    JPEGLosslessSV1: None,
    JPEGLSLossless: None,
    JPEGLSNearLossless: "ISO_14495_1",
    JPEG2000Lossless: None,
    JPEG2000: "ISO_15444_1",
}
#: Colour models pydicom decodes to RGB (JPEG 2000's ICT/RCT are undone by the codec itself).
_TO_RGB = frozenset({"YBR_FULL", "YBR_FULL_422", "YBR_ICT", "YBR_RCT"})
_PHOTOMETRICS = frozenset({"MONOCHROME1", "MONOCHROME2", "PALETTE COLOR", "RGB"}) | _TO_RGB
#: Text regions are widened by a quarter of their height (at least this many pixels) and snapped
#: outwards to this grid, so a one-pixel change in what the detector returns changes no output byte.
_MARGIN, _GRID = 3, 4
_READABLE = re.compile(r"[0-9A-Za-z]")


def burned_in_risk(ds: Dataset) -> bool:
    """True if the object's pixels (or encapsulated document) may carry burned-in identifying text."""
    if not any(tag in ds for tag in _PIXEL_TAGS) and 0x00420011 not in ds:
        return False
    stated = str(ds.get("BurnedInAnnotation", "") or "").strip().upper()
    if stated in ("YES", "NO"):
        return stated == "YES"
    modality = str(ds.get("Modality", "") or "").strip().upper()
    sop_class = str(ds.get("SOPClassUID", "") or "").strip()
    if not modality and not sop_class:
        return True
    if modality in BURNED_IN_MODALITIES:
        return True
    if (
        sop_class.startswith((_SECONDARY_CAPTURE_ROOT, _ENCAPSULATED_DOCUMENT_ROOT))
        or sop_class in _ULTRASOUND_CLASSES
        or sop_class in _VIDEO_CLASSES
    ):
        return True
    return transfer_syntax_of(ds) in MPEGTransferSyntaxes


def clean_pixel_data(ds: Dataset, mask_rules_path: str | None = None) -> str:
    """Remove burned-in text from every frame, in place, and return "masked".

    Pixel data is rewritten native (Explicit VR Little Endian); YBR data decoded to RGB is
    labelled RGB; bits above Bits Stored are cleared (no overlay can hide there). Burned In
    Annotation becomes NO only after the OCR re-check found no text in any frame.
    """
    if 0x00420011 in ds:
        raise PixelCleaningError("encapsulated_document", "encapsulated documents cannot be masked")
    if "PixelData" not in ds:
        code = "unsupported_pixel_format" if any(t in ds for t in _PIXEL_TAGS) else "no_pixel_data"
        raise PixelCleaningError(code, "only (7FE0,0010) Pixel Data can be masked")
    syntax = transfer_syntax_of(ds)
    if syntax not in _DECODABLE_SYNTAXES:
        raise PixelCleaningError(
            "unsupported_transfer_syntax", f"cannot decode transfer syntax {syntax or 'absent'}"
        )
    photometric = str(ds.get("PhotometricInterpretation", "")).strip().upper()
    bits_allocated, bits_stored = ds.get("BitsAllocated"), ds.get("BitsStored")
    if photometric not in _PHOTOMETRICS or bits_allocated not in (8, 16) or not bits_stored:
        raise PixelCleaningError(
            "unsupported_pixel_format",
            f"photometric {photometric or 'absent'}, bits allocated {bits_allocated}",
        )
    frames = _decode_frames(ds, syntax)
    _blank(frames, mask_rectangles(ds, mask_rules_path))
    if frames.dtype.kind == "u" and bits_stored < bits_allocated:
        frames &= np.asarray((1 << bits_stored) - 1, dtype=frames.dtype)
    _mask_detected_text(frames, ds, palette=ds if photometric == "PALETTE COLOR" else None)
    _write_back(ds, frames, photometric, syntax)
    return "masked"


def _mask_detected_text(frames: np.ndarray, ds: Dataset, palette: Dataset | None) -> None:
    """Blank every text region OCR detects in any frame, in all frames (overlays are static;
    masking more is the safe side), for up to ``MASK_ROUNDS`` rounds; then prove it.

    The proof is the last detection pass finding nothing, or, when it still finds regions (on
    ultrasound, speckle next to a blanked box can look like a glyph to the detector), OCR reading
    no letter or digit in any of them: what the recogniser cannot read as text is not text left."""
    rows, columns = frames.shape[1:3]
    for _ in range(MASK_ROUNDS):
        regions = {
            _widened(box, rows, columns)
            for frame in frames
            for box in ocr.detect_text(_ocr_view(frame, palette))
        }
        if not regions:
            return
        _blank(frames, sorted(regions))
    lines = [[t for t in ocr.read_text(_ocr_view(frame, palette)) if _READABLE.search(t)] for frame in frames]
    if any(lines):
        identifiers = ocr.header_identifiers(ds)
        kinds = set().union(*(ocr.identifying_kinds(found, identifiers) for found in lines))
        raise PixelCleaningError(
            "ocr_text_found",
            f"OCR still reads {'/'.join(sorted(kinds)) or 'other'} text in "
            f"{sum(map(bool, lines))} masked frame(s)",
        )


def _widened(box: tuple[int, int, int, int], rows: int, columns: int) -> tuple[int, int, int, int]:
    left, top, right, bottom = box
    margin = max(_MARGIN, (bottom - top + 3) // 4)
    return (
        max(0, (left - margin) // _GRID * _GRID),
        max(0, (top - margin) // _GRID * _GRID),
        min(columns, -(-(right + margin) // _GRID) * _GRID),
        min(rows, -(-(bottom + margin) // _GRID) * _GRID),
    )


def _ocr_view(frame: np.ndarray, palette: Dataset | None) -> np.ndarray:
    """The frame as a viewer shows it: palette indices through the object's colour LUT."""
    if palette is None:
        return frame
    from pydicom.pixels import apply_color_lut

    return np.asarray(apply_color_lut(frame[..., 0], palette))


def _blank(frames: np.ndarray, boxes: list[tuple[int, int, int, int]]) -> None:
    for left, top, right, bottom in boxes:
        frames[:, top:bottom, left:right, :] = 0


def _decode_frames(ds: Dataset, syntax: str) -> np.ndarray:
    """All frames as (frames, rows, columns, samples); YBR is converted to RGB by pydicom.
    A dataset read without file meta is decoded through a view that states its encoding."""
    from pydicom.pixels import pixel_array

    if "TransferSyntaxUID" not in getattr(ds, "file_meta", {}):
        view = Dataset(ds)  # shares the elements; the source keeps its own (absent) meta
        view.file_meta = FileMetaDataset()
        view.file_meta.TransferSyntaxUID = UID(syntax)
        ds = view
    try:
        arr = pixel_array(ds)
    except Exception as exc:  # noqa: BLE001 - any decoder failure means we cannot mask with certainty
        raise PixelCleaningError(
            "undecodable", f"pixel data could not be decoded ({type(exc).__name__})"
        ) from None
    frames, rows, columns = int(ds.get("NumberOfFrames", 1) or 1), int(ds.Rows), int(ds.Columns)
    samples = int(ds.get("SamplesPerPixel", 1) or 1)
    if arr.size != frames * rows * columns * samples:
        raise PixelCleaningError("undecodable", "decoded pixel data does not match the image pixel module")
    arr = arr.reshape(frames, rows, columns, samples)
    if not arr.dtype.isnative:  # big endian sources: the output is written little endian
        return arr.astype(arr.dtype.newbyteorder("="))
    return arr if arr.flags.writeable else arr.copy()


def _write_back(ds: Dataset, frames: np.ndarray, photometric: str, syntax: str) -> None:
    from pydicom.pixels import set_pixel_data

    number_of_frames = ds.get("NumberOfFrames")
    samples = frames.shape[-1]
    arr = frames[..., 0] if samples == 1 else frames
    if arr.shape[0] == 1:
        arr = arr[0]
    new_photometric = "RGB" if photometric in _TO_RGB else photometric
    if getattr(ds, "file_meta", None) is None:
        ds.file_meta = FileMetaDataset()
    # set_pixel_data encodes for the dataset's transfer syntax, and pydicom cannot encode big
    # endian: the output is little endian in any case (the writer re-encodes the other elements).
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    try:  # validates everything before it changes the dataset
        set_pixel_data(ds, arr, new_photometric, int(ds.BitsStored), generate_instance_uid=False)
    except (ValueError, AttributeError, NotImplementedError) as exc:
        raise PixelCleaningError(
            "unsupported_pixel_format", f"cannot re-encode ({type(exc).__name__})"
        ) from None
    for tag in (0x7FE00001, 0x7FE00002):  # extended offset table: only meaningful when encapsulated
        if tag in ds:
            del ds[tag]
    if number_of_frames is not None:  # keep Type 1 Number of Frames on multi-frame IODs, even at 1
        ds.NumberOfFrames = number_of_frames
    lossy_method = _DECODABLE_SYNTAXES[syntax]
    if lossy_method and str(ds.get("LossyImageCompression", "")).strip() != "00":
        ds.LossyImageCompression = "01"
        if "LossyImageCompressionMethod" not in ds:
            ds.LossyImageCompressionMethod = lossy_method
    ds.BurnedInAnnotation = "NO"
