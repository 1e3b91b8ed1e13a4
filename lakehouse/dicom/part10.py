"""Part 10 files: file meta rebuilt from scratch, and the bytes of a dataset, byte for byte
what ``pydicom.dcmwrite(..., enforce_file_format=True)`` writes, without its per-element
overhead.

``rebuild_file_meta`` carries nothing of the source meta over: no Source/Sending/Receiving
AE Title, no source implementation class or version, no private meta; only the transfer
syntax of the pixel data. The implementation identity is lakehouse's.

pydicom's writer costs several microseconds per element (a buffer, a context manager and
a dispatch each), which made writing the output cost more than reading and de-identifying
it. Here the common cases are encoded directly, with pydicom's own rules:

- elements still raw (kept as read) are written as read: tag, VR, length, value bytes;
  except standard attributes read with explicit VR UN, written by their dictionary VR;
- sequences are written item by item through the same path;
- converted ASCII-text values (UIDs, dates, codes, descriptions) are joined with ``\\``,
  padded to even length (UI with NUL, the rest with a space) and encoded.

Everything else (person names, numbers, non-ASCII text, ISO 2022 character sets, raw
elements pydicom would rewrite: odd cases around undefined lengths or 64 KiB values, items
whose encoding or character set differs from how they were read) goes through pydicom's
``write_data_element`` / ``write_dataset``, and whole objects that are not plainly encoded
(a private or deflated transfer syntax, a file meta value that is not one plain string)
through ``dcmwrite`` itself.
"""

from __future__ import annotations

import io
from collections.abc import MutableSequence
from operator import itemgetter
from struct import Struct

import pydicom
from pydicom.charset import convert_encodings, custom_encoders, default_encoding
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_data_element, write_dataset
from pydicom.multival import MultiValue
from pydicom.tag import BaseTag
from pydicom.uid import (
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)
from pydicom.valuerep import AMBIGUOUS_VR

from lakehouse.dicom.elements import known_vr

__all__ = ["IMPLEMENTATION_CLASS_UID", "IMPLEMENTATION_VERSION_NAME", "rebuild_file_meta", "transfer_syntax_of",
           "write_part10"]

# 2.25 UID: first 128 bits of SHA-256("lakehouse implementation class") (PS3.5 B.2).
IMPLEMENTATION_CLASS_UID = "2.25.304714826324063156414613553275958213621"
IMPLEMENTATION_VERSION_NAME = "LAKEHOUSE_DEID_1"

LONG_VRS = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "SQ", "UC", "UN", "UR", "UT", "SV", "UV"})
# Written by pydicom with the default encoding, whatever the Specific Character Set.
ASCII_VRS = frozenset({"AE", "AS", "CS", "DA", "DT", "TM", "UR", "UI"})
# Encoded with the Specific Character Set: ASCII text is itself in these encodings.
TEXT_VRS = frozenset({"LO", "LT", "SH", "ST", "UC", "UT"})
ASCII_TRANSPARENT = frozenset({"iso8859", "latin_1", "UTF8", "utf_8", "ascii"}) - custom_encoders.keys()
PIXEL_DATA = BaseTag(0x7FE00010)
SPECIFIC_CHARACTER_SET = BaseTag(0x00080005)
UNDEFINED = 0xFFFFFFFF
ITEM, ITEM_DELIMITER, SEQUENCE_DELIMITER = 0xFFFEE000, 0xFFFEE00D, 0xFFFEE0DD
META_VERSION = b"\x00\x01"


class _Layout:
    """Element headers for one encoding (implicit/explicit VR, byte order)."""

    def __init__(self, implicit: bool, little: bool) -> None:
        order = "<" if little else ">"
        self.implicit, self.little = implicit, little
        self.implicit_header = Struct(f"{order}HHL")
        self.short_header = Struct(f"{order}HH2sH")
        self.long_header = Struct(f"{order}HH2sHL")
        self.tag_length = Struct(f"{order}HHL")

    def header(self, tag: int, vr: str, length: int) -> bytes:
        if self.implicit:
            return self.implicit_header.pack(tag >> 16, tag & 0xFFFF, length)
        if vr in LONG_VRS:
            return self.long_header.pack(tag >> 16, tag & 0xFFFF, vr.encode(), 0, length)
        return self.short_header.pack(tag >> 16, tag & 0xFFFF, vr.encode(), length)

    def marker(self, tag: int, length: int) -> bytes:
        return self.tag_length.pack(tag >> 16, tag & 0xFFFF, length)


_LAYOUTS = {(i, le): _Layout(i, le) for i in (True, False) for le in (True, False)}
_META = _LAYOUTS[(False, True)]  # file meta: always explicit VR little endian


def transfer_syntax_of(ds: Dataset) -> str:
    """The source's transfer syntax (from its meta, else how the dataset was encoded)."""
    meta = getattr(ds, "file_meta", None)
    if meta is not None and "TransferSyntaxUID" in meta:
        return str(meta.TransferSyntaxUID)
    implicit, little = getattr(ds, "original_encoding", (None, None))
    if implicit:
        return ImplicitVRLittleEndian
    return ExplicitVRBigEndian if little is False else ExplicitVRLittleEndian


def rebuild_file_meta(ds: Dataset, transfer_syntax: str) -> None:
    """New file meta for ``ds`` (and a zero preamble): its SOP class and instance, the given
    transfer syntax, lakehouse's implementation identity."""
    meta = FileMetaDataset()
    # The elements ``meta.<Keyword> = value`` makes, without the keyword lookups.
    for tag, vr, value in (
        (0x00020001, "OB", META_VERSION),  # File Meta Information Version
        (0x00020002, "UI", ds.SOPClassUID),  # Media Storage SOP Class UID
        (0x00020003, "UI", ds.SOPInstanceUID),  # Media Storage SOP Instance UID
        (0x00020010, "UI", UID(transfer_syntax)),  # Transfer Syntax UID
        (0x00020012, "UI", UID(IMPLEMENTATION_CLASS_UID)),  # Implementation Class UID
        (0x00020013, "SH", IMPLEMENTATION_VERSION_NAME),  # Implementation Version Name
    ):
        meta[tag] = DataElement(tag, vr, value)
    ds.file_meta = meta
    ds.preamble = b"\x00" * 128


def write_part10(ds: Dataset) -> bytes:
    """The file ``dcmwrite(buffer, ds, enforce_file_format=True)`` writes; ``ds.file_meta`` is
    the one ``rebuild_file_meta`` made (it is not modified)."""
    meta = ds.file_meta
    syntax = meta.get("TransferSyntaxUID")
    values = [meta.get(k) for k in ("MediaStorageSOPClassUID", "MediaStorageSOPInstanceUID",
                                    "ImplementationClassUID", "ImplementationVersionName")]
    ds_class, ds_instance = ds.get("SOPClassUID"), ds.get("SOPInstanceUID")
    if (
        not isinstance(syntax, UID) or syntax.is_private or not syntax.is_transfer_syntax
        or syntax == DeflatedExplicitVRLittleEndian
        or syntax.is_implicit_VR and not syntax.is_little_endian
        or not all(type(v) in (str, UID) and v for v in values)
        or values[0] != ds_class or values[1] != ds_instance
        or any(t >> 16 in (0, 2) for t in ds.keys())  # noqa: SIM118 - iterating a Dataset converts
        or getattr(ds, "preamble", None) != b"\x00" * 128
        or meta.get("FileMetaInformationVersion") != META_VERSION or len(meta) != 6
    ):
        buffer = io.BytesIO()  # anything unusual: pydicom decides (and raises) as before
        pydicom.dcmwrite(buffer, ds, enforce_file_format=True)
        return buffer.getvalue()
    if PIXEL_DATA in ds:  # what dcmwrite does, converting Pixel Data the same way
        ds[PIXEL_DATA].is_undefined_length = syntax.is_compressed
    out = bytearray(b"\x00" * 128 + b"DICM")
    out += _meta_group(meta, syntax, values)
    fp = DicomBytesIO()
    fp.is_implicit_VR, fp.is_little_endian = syntax.is_implicit_VR, syntax.is_little_endian
    _write_dataset(fp, ds, default_encoding)
    out += fp.getvalue()
    return bytes(out)


def _meta_group(meta: Dataset, syntax: str, values: list[str]) -> bytes:
    h = _META
    body = bytearray(h.header(0x00020001, "OB", 2) + META_VERSION)
    for tag, value in ((0x00020002, values[0]), (0x00020003, values[1]), (0x00020010, syntax),
                       (0x00020012, values[2])):
        encoded = _padded(value, b"\x00")
        body += h.header(tag, "UI", len(encoded)) + encoded
    name = _padded(values[3], b" ")
    body += h.header(0x00020013, "SH", len(name)) + name
    return h.header(0x00020000, "UL", 4) + len(body).to_bytes(4, "little") + bytes(body)


def _padded(value: str, pad: bytes) -> bytes:
    encoded = value.encode(default_encoding)
    return encoded + pad if len(encoded) % 2 else encoded


def _write_dataset(fp: DicomBytesIO, ds: Dataset, parent_encoding: str | list[str]) -> None:
    """``pydicom.filewriter.write_dataset`` for a dataset written as it was read."""
    if not _converted_only(ds) and (
        (fp.is_implicit_VR, fp.is_little_endian) != ds.original_encoding
        or _character_set_changed(ds, parent_encoding)
    ):
        write_dataset(fp, ds, parent_encoding)  # pydicom converts and corrects everything
        return
    # pydicom reads the charset with ``get`` (which converts a raw element): do the same.
    encodings = ds.get("SpecificCharacterSet", parent_encoding)
    converted = convert_encodings(encodings or [default_encoding])
    ascii_text = converted[0] in ASCII_TRANSPARENT
    layout = _LAYOUTS[(fp.is_implicit_VR, fp.is_little_endian)]
    for tag, elem in sorted(ds.items(), key=itemgetter(0)):
        if tag & 0xFFFF == 0 and tag >> 16 > 6:
            continue
        if isinstance(elem, RawDataElement):
            if elem.VR == "UN" and known_vr(elem):  # written by its dictionary VR, as converted
                write_data_element(fp, ds[tag], encodings)
            elif not _write_raw(fp, layout, elem):
                # an implicit-VR source element (VR None) is written by its dictionary VR
                write_data_element(fp, ds[tag] if elem.VR is None else ds.get_item(tag), encodings)
        elif elem.VR == "SQ":
            _write_sequence(fp, layout, elem, converted)
        elif not _write_ascii(fp, layout, elem, ascii_text):
            write_data_element(fp, elem, encodings)


def _character_set_changed(ds: Dataset, parent_encoding: str | list[str]) -> bool:
    """Whether pydicom's writer would re-encode ``ds`` because its character set is no longer
    the one it was read with. With its own Specific Character Set, pydicom's own comparison;
    without one, the dataset inherits its parent's set, which is compared with the set it was
    read with (a parent whose set changed sends the dataset through pydicom's writer, which is
    always right, only slower)."""
    if SPECIFIC_CHARACTER_SET in ds:
        # pydicom reads the charset with ``get`` (which converts a raw element): do the same.
        return bool(ds.original_character_set != convert_encodings(ds[SPECIFIC_CHARACTER_SET].value))
    return _codecs(ds.original_character_set) != _codecs(parent_encoding)


def _codecs(encodings: str | MutableSequence[str]) -> list[str]:
    return [encodings] if isinstance(encodings, str) else list(encodings)


def _converted_only(ds: Dataset) -> bool:
    """Nothing raw or ambiguous at any depth (e.g. the items we create): pydicom's re-encoding
    path would convert and correct nothing, so the direct path writes the same bytes."""
    for elem in ds.values():
        if isinstance(elem, RawDataElement) or elem.VR in AMBIGUOUS_VR:
            return False
        if elem.VR == "SQ" and not all(_converted_only(item) for item in elem.value):
            return False
    return True


def _write_raw(fp: DicomBytesIO, layout: _Layout, elem: RawDataElement) -> bool:
    value, vr = elem.value, elem.VR or ""  # no VR: read implicit, and written implicit here
    if value is None or (not layout.implicit and len(vr) != 2):
        return False
    undefined = elem.length == UNDEFINED
    if undefined:
        if elem.tag == PIXEL_DATA or (not layout.implicit and vr not in LONG_VRS):
            return False
        fp.write(layout.header(elem.tag, vr, UNDEFINED))
        fp.write(value)
        fp.write(layout.marker(SEQUENCE_DELIMITER, 0))
        return True
    if not layout.implicit and vr not in LONG_VRS and len(value) > 0xFFFF:
        return False  # pydicom rewrites the VR as UN (with a warning)
    fp.write(layout.header(elem.tag, vr, len(value)))
    fp.write(value)
    return True


def _write_ascii(fp: DicomBytesIO, layout: _Layout, elem: DataElement, ascii_text: bool) -> bool:
    """A converted string value pydicom encodes as ASCII: written here; else False."""
    vr = elem.VR
    if vr in ASCII_VRS:
        pad = b"\x00" if vr == "UI" else b" "
    elif vr in TEXT_VRS and ascii_text:
        pad = b" "
    else:
        return False
    value = elem.value
    if type(value) in (str, UID):
        text = value
    elif type(value) is MultiValue and all(type(v) in (str, UID) for v in value):
        text = "\\".join(value)
    else:
        return False
    if vr in TEXT_VRS and not text.isascii():
        return False
    if text == "" or elem.is_undefined_length:
        return False  # empty (length 0 for pydicom's own reasons) or odd: let pydicom do it
    encoded = text.encode(default_encoding)
    if len(encoded) % 2:
        encoded += pad
    if not layout.implicit and vr not in LONG_VRS and len(encoded) > 0xFFFF:
        return False
    fp.write(layout.header(elem.tag, vr, len(encoded)))
    fp.write(encoded)
    return True


def _write_sequence(fp: DicomBytesIO, layout: _Layout, elem: DataElement, encodings: list[str]) -> None:
    """``write_data_element`` + ``write_sequence_item`` for a converted sequence."""
    body = DicomBytesIO()
    body.is_implicit_VR, body.is_little_endian = fp.is_implicit_VR, fp.is_little_endian
    if not elem.is_empty:
        for item in elem.value:
            inner = DicomBytesIO()
            inner.is_implicit_VR, inner.is_little_endian = fp.is_implicit_VR, fp.is_little_endian
            _write_dataset(inner, item, encodings)
            data = inner.getvalue()
            if getattr(item, "is_undefined_length_sequence_item", False):
                body.write(layout.marker(ITEM, UNDEFINED))
                body.write(data)
                body.write(layout.marker(ITEM_DELIMITER, 0))
            else:
                body.write(layout.marker(ITEM, len(data)))
                body.write(data)
    data = body.getvalue()
    undefined = elem.is_undefined_length
    fp.write(layout.header(elem.tag, "SQ", UNDEFINED if undefined else len(data)))
    fp.write(data)
    if undefined:
        fp.write(layout.marker(SEQUENCE_DELIMITER, 0))
