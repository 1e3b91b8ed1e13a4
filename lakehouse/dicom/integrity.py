"""Is a Part 10 file whole? A walk over its bytes that checks every element fits.

pydicom reads tolerantly: a file cut short loses its last elements or the end of a value
without a warning, and an element whose length runs past the end swallows everything after
it. Published, such an object is a header-only image or a dataset missing what came after
the bad length. ``structural_problem`` finds both before anything is de-identified:

- ``truncated``: the input ends inside an element header, a value, a sequence or an item
  (an undefined length whose delimiter never comes, PS3.5 7.5);
- ``bad_length``: a declared value length that cannot be right: past the end of the item
  or sequence that holds it, or past the end of the input while odd (PS3.5 7.1.1: lengths
  are even) or larger than the whole input (for anything but the pixel data, which is what
  a cut file loses);
- ``missing_pixel_data``: an image (an object of an "... Image Storage" SOP class) without
  Pixel Data: a file cut at an element boundary before its pixel data looks like
  that, and so does a header-only copy; neither is a valid image to publish.

Positions and lengths of the top-level elements come from what pydicom read; values of
undefined length (sequences, items, encapsulated pixel data) are walked in the bytes to their
delimiters, reading element headers only. The content of a defined-length sequence is
bounded by its length, which is checked; pydicom reads it within those bounds. A deflated
dataset is inflated and walked whole.
"""

from __future__ import annotations

import zlib
from struct import Struct
from typing import Literal

from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.uid import UID

__all__ = ["Problem", "structural_problem"]

Problem = Literal["truncated", "bad_length", "missing_pixel_data"]

UNDEFINED = 0xFFFFFFFF
ITEM, ITEM_DELIMITER, SEQUENCE_DELIMITER = 0xFFFEE000, 0xFFFEE00D, 0xFFFEE0DD
PIXEL_TAGS = frozenset({0x7FE00008, 0x7FE00009, 0x7FE00010})
LONG_VRS = frozenset({b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"UC", b"UN", b"UR", b"UT", b"SV", b"UV"})
DEFLATED = "1.2.840.10008.1.2.1.99"
_LE_TAG = Struct("<HH")
_LE_U16 = Struct("<H")
_LE_U32 = Struct("<L")


class _Found(Exception):
    def __init__(self, problem: Problem) -> None:
        super().__init__(problem)
        self.problem = problem


class _Walker:
    def __init__(self, data: bytes, little: bool) -> None:
        order = "<" if little else ">"
        self.data = data
        self.tag = Struct(f"{order}HH")
        self.u16, self.u32 = Struct(f"{order}H"), Struct(f"{order}L")

    def header(self, pos: int, end: int, implicit: bool) -> tuple[int, int, int, bytes]:
        """(tag, value length, position of the value, explicit VR or b"")."""
        data = self.data
        if end - pos < 8:
            raise _Found("truncated")
        group, number = self.tag.unpack_from(data, pos)
        tag = group << 16 | number
        if implicit or group == 0xFFFE:
            return tag, self.u32.unpack_from(data, pos + 4)[0], pos + 8, b""
        vr = data[pos + 4:pos + 6]
        if vr in LONG_VRS:
            if end - pos < 12:
                raise _Found("truncated")
            return tag, self.u32.unpack_from(data, pos + 8)[0], pos + 12, vr
        return tag, self.u16.unpack_from(data, pos + 6)[0], pos + 8, vr

    def elements(self, pos: int, end: int, implicit: bool, top: bool, in_item: bool) -> int:
        """Walk elements from ``pos`` to ``end`` (or an item delimiter when ``in_item``)."""
        implicit = self.encoding_found(pos, end, implicit)
        while pos < end:
            tag, length, pos, vr = self.header(pos, end, implicit)
            if tag == ITEM_DELIMITER and in_item:
                return pos
            if length == UNDEFINED:
                pos = self.items(pos, end, implicit or vr == b"UN")  # PS3.5 6.2.2: UN items are implicit
                continue
            if pos + length > end:
                absurd = length & 1 or (length > len(self.data) and tag not in PIXEL_TAGS)
                raise _Found("truncated" if top and not absurd else "bad_length")
            pos += length
        if in_item:
            raise _Found("truncated")  # the input ended before the item's delimiter
        return pos

    def encoding_found(self, pos: int, end: int, implicit: bool) -> bool:
        """Whether the dataset starting at ``pos`` is implicit VR, found the way pydicom finds it
        (are its first element's VR bytes two capital letters?), whatever was declared."""
        if end - pos < 8 or self.tag.unpack_from(self.data, pos)[0] == 0xFFFE:
            return implicit  # empty, or an item delimiter first: nothing to look at
        vr = self.data[pos + 4:pos + 6]
        return not (vr.isalpha() and vr.isupper())

    def items(self, pos: int, end: int, implicit: bool) -> int:
        """The items of an undefined-length value, to its sequence delimiter."""
        while True:
            tag, length, pos, _ = self.header(pos, end, implicit)
            if tag == SEQUENCE_DELIMITER:
                return pos
            if tag != ITEM:
                raise _Found("bad_length")  # the value ran into something that is not an item
            if length == UNDEFINED:
                pos = self.elements(pos, end, implicit, top=False, in_item=True)
            elif pos + length > end:
                raise _Found("truncated" if end == len(self.data) else "bad_length")
            else:
                pos += length


def structural_problem(data: bytes, ds: Dataset) -> Problem | None:
    """What is wrong with the structure of ``data``, the Part 10 (or bare dataset) bytes that
    pydicom read as ``ds``; None when every element fits."""
    try:
        start = _dataset_start(data)
        implicit, little = ds.original_encoding
        meta = getattr(ds, "file_meta", None)
        walker = _Walker(data, little is not False)
        if meta is not None and str(meta.get("TransferSyntaxUID", "")) == DEFLATED:
            inflater = zlib.decompressobj(-zlib.MAX_WBITS)
            walker = _Walker(data[:start] + inflater.decompress(data[start:]), little is not False)
            if not inflater.eof:
                return "truncated"
            walker.elements(start, len(walker.data), bool(implicit), top=True, in_item=False)
        elif _read_to(walker, ds, start, bool(implicit)) != len(data):
            return "truncated"  # pydicom stopped before the end: the input ends inside a header
    except _Found as found:
        return found.problem
    except zlib.error:
        return "truncated"
    return "missing_pixel_data" if _image_without_pixels(ds) else None


def _read_to(walker: _Walker, ds: Dataset, start: int, implicit: bool) -> int:
    """Where the top-level elements pydicom read end in the input. Their positions and lengths
    come from pydicom (defined lengths are checked against the bytes it got); only values of
    undefined length are walked, as pydicom does not say whether their delimiter was there."""
    size, end = len(walker.data), start
    for stored in ds.values():
        if isinstance(stored, RawDataElement):
            tell, length = stored.value_tell, stored.length
            if length != UNDEFINED:
                if stored.value is not None and len(stored.value) < length:
                    absurd = length & 1 or (length > size and stored.tag not in PIXEL_TAGS)
                    raise _Found("bad_length" if absurd else "truncated")
                end = tell + length
                continue
            un = stored.VR == "UN" or (stored.VR is None and implicit)
        elif stored.is_undefined_length and stored.file_tell is not None:
            tell, un = stored.file_tell, stored.VR == "UN"
        else:
            continue  # made in memory, not read: nothing to check
        end = walker.items(tell, size, implicit or un)
    return end


def _dataset_start(data: bytes) -> int:
    """Where the dataset begins: after the preamble, the DICM prefix and the file meta group
    (always explicit VR little endian, PS3.10 7.1), which is walked element by element."""
    pos = 132 if data[128:132] == b"DICM" else 0
    while len(data) - pos >= 8 and _LE_TAG.unpack_from(data, pos)[0] == 0x0002:
        vr = data[pos + 4:pos + 6]
        if vr in LONG_VRS:
            if len(data) - pos < 12:
                raise _Found("truncated")
            pos += 12 + _LE_U32.unpack_from(data, pos + 8)[0]
        else:
            pos += 8 + _LE_U16.unpack_from(data, pos + 6)[0]
    if pos > len(data):
        raise _Found("truncated")
    return pos


def _image_without_pixels(ds: Dataset) -> bool:
    """An image (an object of an "... Image Storage" SOP class) without its pixel data: what a
    file cut at an element boundary before its pixel data (always the last element of an
    image) looks like."""
    if any(t in ds for t in PIXEL_TAGS):
        return False
    sop_class = ds.get_item(0x00080016)
    value = sop_class.value if sop_class is not None else None
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    return isinstance(value, str) and "Image Storage" in UID(value.strip(" \x00")).name
