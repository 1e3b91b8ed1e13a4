"""Header-only DICOM parsing from a leading byte range.

``read_header`` fetches a prefix of an object (``header_bytes``, 64 KiB by
default), parses it up to Pixel Data, and fetches a longer prefix only when
the header does not fit. Pixel data is never requested: parsing stops at the
Pixel Data tag, whose declared length is only checked against the object size
(a cut-off object is reported as truncated).

Two parsers, one result: a fast walk over element headers for the common case
(Part 10 files in implicit or explicit VR little endian, simple character
sets), and pydicom (``read_partial`` with a stop rule) for everything else —
no meta, big endian, deflated, code extensions, odd VRs. Tests check that both
give the same fields on pydicom's test files.

Real archives hold odd objects, so parsing is tolerant but checked: every
object gets a ``Header`` whose ``status`` is ``ok``, ``warning`` (readable,
but something a later stage should know, e.g. no file meta) or ``error``, and
whose ``reason`` is a stable code plus a fixed one-line text — never a value
from the header (privacy).
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from struct import Struct, unpack_from
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pydicom (~0.25 s to import) loads only when an object needs the fallback parser
    from pydicom.dataset import Dataset

OK, WARNING, ERROR = "ok", "warning", "error"

# Reason codes and their fixed texts. Kept here so codes are stable across releases.
REASONS: dict[str, str] = {
    "empty_object": "the object has no bytes",
    "not_dicom": "no DICOM preamble, file meta or recognizable data set",
    "truncated": "the object ends inside an element or before the end of Pixel Data",
    "absurd_element_length": "an element declares a length larger than the whole object",
    "header_too_long": "the header is longer than catalog.max_header_bytes",
    "unreadable": "pydicom could not parse the header",
    "no_file_meta": "no file meta information; transfer syntax inferred",
    "big_endian": "retired Explicit VR Big Endian transfer syntax",
    "deflated": "deflated transfer syntax; the whole data set was read to inflate it",
    "no_sop_instance_uid": "no SOP Instance UID in the data set",
}

# Data set attributes the catalog keeps: keyword → (tag, catalog field). Tags written out so the
# fast path needs no pydicom; a test checks them against pydicom's data dictionary.
_FIELDS: dict[str, tuple[int, str]] = {
    "SOPClassUID": (0x00080016, "sop_class_uid"),
    "SOPInstanceUID": (0x00080018, "sop_instance_uid"),
    "StudyInstanceUID": (0x0020000D, "study_instance_uid"),
    "SeriesInstanceUID": (0x0020000E, "series_instance_uid"),
    "PatientID": (0x00100020, "patient_id"),
    "PatientName": (0x00100010, "patient_name"),
    "PatientBirthDate": (0x00100030, "patient_birth_date"),
    "PatientSex": (0x00100040, "patient_sex"),
    "StudyDate": (0x00080020, "study_date"),
    "StudyTime": (0x00080030, "study_time"),
    "AccessionNumber": (0x00080050, "accession_number"),
    "Modality": (0x00080060, "modality"),
    "BodyPartExamined": (0x00180015, "body_part_examined"),
    "StudyDescription": (0x00081030, "study_description"),
    "SeriesDescription": (0x0008103E, "series_description"),
    "Manufacturer": (0x00080070, "manufacturer"),
    "ManufacturerModelName": (0x00081090, "manufacturer_model_name"),
    # Quasi-identifiers, so a request's review can measure k before anything is read in full.
    "PatientAge": (0x00101010, "patient_age"),
    "PatientSize": (0x00101020, "patient_size"),
    "PatientWeight": (0x00101030, "patient_weight"),
    "EthnicGroup": (0x00102160, "ethnic_group"),
    "InstitutionName": (0x00080080, "institution_name"),
    "InstitutionalDepartmentName": (0x00081040, "institutional_department_name"),
    "StationName": (0x00081010, "station_name"),
    "Rows": (0x00280010, "rows"),
    "Columns": (0x00280011, "columns"),
    "NumberOfFrames": (0x00280008, "number_of_frames"),
    "BurnedInAnnotation": (0x00280301, "burned_in_annotation"),
    "ImageType": (0x00080008, "image_type"),
}
_DATE_FIELDS = {"patient_birth_date", "study_date"}
_INT_FIELDS = {"rows", "columns", "number_of_frames"}
_KINDS = {
    "patient_birth_date": "da",
    "study_date": "da",
    "rows": "us",
    "columns": "us",
    "number_of_frames": "int",
    "image_type": "multi",
}
_PIXEL_TAGS = {0x7FE00010, 0x7FE00008, 0x7FE00009}  # Pixel Data, Float, Double Float
_SPECIFIC_TAGS: list[int] = [tag for tag, _ in _FIELDS.values()]
_BIG_ENDIAN, _DEFLATED = "1.2.840.10008.1.2.2", "1.2.840.10008.1.2.1.99"


@dataclass
class Header:
    """What the catalog keeps of one object's header."""

    status: str
    reason: str | None = None
    transfer_syntax_uid: str | None = None
    fields: dict[str, Any] = field(default_factory=dict)
    bytes_read: int = 0

    @property
    def code(self) -> str | None:
        return None if self.reason is None else self.reason.split(":", 1)[0]


def failure(code: str, bytes_read: int = 0) -> Header:
    return Header(status=ERROR, reason=f"{code}: {REASONS[code]}", bytes_read=bytes_read)


class _NeedMore(Exception):
    def __init__(self, upto: int) -> None:
        self.upto = upto


class _AbsurdLength(Exception):
    pass


class _Truncated(Exception):
    pass


class _Fallback(Exception):
    """The fast path does not handle this object; pydicom parses it."""


class _Window(io.BytesIO):
    """A prefix of an object; records how far the parser wanted to go past it."""

    def __init__(self, data: bytes, object_size: int) -> None:
        super().__init__(data)
        self.available = len(data)
        self.object_size = object_size
        self.wanted = 0  # furthest offset any read or seek asked for
        self.short_reads = 0
        self.partial_read = False
        self.inflated = False  # the parser read the rest at once: a deflated data set

    def read(self, n: int | None = -1) -> bytes:
        pos = self.tell()
        if n is None or n < 0:
            self.wanted = max(self.wanted, self.object_size)
            self.inflated = True
            return super().read()
        self.wanted = max(self.wanted, pos + n)
        data = super().read(n)
        if len(data) < n:
            self.short_reads += 1
            self.partial_read = self.partial_read or len(data) > 0
        return data

    def seek(self, offset: int, whence: int = 0) -> int:
        pos = super().seek(offset, whence)
        self.wanted = max(self.wanted, pos)
        return pos

    @property
    def is_whole_object(self) -> bool:
        return self.available >= self.object_size

    @property
    def overran(self) -> bool:
        """The parser asked for bytes past the end of the object itself."""
        return (
            self.partial_read
            or self.short_reads > 1
            or self.wanted > self.object_size + 8  # a seek past the end, not a final tag read
        )


def parse_prefix(data: bytes, object_size: int) -> Header:
    """Parse the header in ``data`` (a prefix of an object of ``object_size`` bytes).

    Raises ``_NeedMore`` when a longer prefix is needed."""
    if object_size == 0:
        return failure("empty_object")
    if not _looks_like_dicom(data):
        return failure("not_dicom", len(data))
    try:
        return _scan_prefix(data, object_size)
    except _Fallback:
        pass
    except _AbsurdLength:
        return failure("absurd_element_length", len(data))
    except _Truncated:
        return failure("truncated", len(data))
    return _parse_with_pydicom(data, object_size)


def _parse_with_pydicom(data: bytes, object_size: int) -> Header:
    window = _Window(data, object_size)
    pixel: list[tuple[int, int]] = []

    def at_pixels(tag: int, vr: str | None, length: int) -> bool:
        if int(tag) in _PIXEL_TAGS:
            pixel.append((window.tell(), length))
            return True
        if length != 0xFFFFFFFF and length > object_size and not window.inflated:
            raise _AbsurdLength
        return False

    try:
        ds = _dcmread(window, at_pixels)
    except _AbsurdLength:
        return failure("absurd_element_length", len(data))
    except Exception:  # noqa: BLE001  (pydicom raises many kinds on damaged bytes)
        if not window.is_whole_object and window.wanted > window.available:
            raise _NeedMore(window.wanted) from None
        return failure("truncated" if window.overran else "unreadable", len(data))
    if not window.is_whole_object and not pixel and window.wanted >= window.available:
        raise _NeedMore(window.wanted + 8)
    if window.is_whole_object and window.overran:
        return failure("truncated", len(data))
    if pixel and not window.inflated:
        start, length = pixel[0]
        if length != 0xFFFFFFFF and start + length > object_size:
            return failure("absurd_element_length" if length > object_size else "truncated", len(data))
    return _header_from(ds, len(data))


def _dcmread(window: _Window, stop_when: Callable[[int, str | None, int], bool]) -> Dataset:
    """What ``dcmread`` does, with our stop rule (dcmread only offers stop_before_pixels)."""
    from pydicom.filereader import read_partial

    return read_partial(
        window, stop_when=stop_when, defer_size=4096, force=True, specific_tags=_SPECIFIC_TAGS
    )


def _looks_like_dicom(data: bytes) -> bool:
    if data[128:132] == b"DICM" or data[:4] == b"DICM":
        return True
    if len(data) < 8:
        return False
    # A raw data set (no preamble, no meta) starts with a low, even group, little or big endian.
    groups = (int.from_bytes(data[0:2], "little"), int.from_bytes(data[0:2], "big"))
    return any(g % 2 == 0 and 0x0002 <= g <= 0x0010 for g in groups)


def _header_from(ds: Dataset, bytes_read: int) -> Header:
    meta = getattr(ds, "file_meta", None)
    ts = str(meta.get("TransferSyntaxUID", "")) if meta is not None else ""
    warning: str | None = None
    if not ts:
        warning = "no_file_meta"
        ts = _inferred_syntax(ds)
    elif ts == _BIG_ENDIAN:
        warning = "big_endian"
    elif ts == _DEFLATED:
        warning = "deflated"
    fields = {name: _value(ds, keyword, name) for keyword, (_, name) in _FIELDS.items()}
    if fields["sop_instance_uid"] is None and warning is None:
        warning = "no_sop_instance_uid"
    if fields["number_of_frames"] is None and fields["rows"] is not None:
        fields["number_of_frames"] = 1
    return Header(
        status=WARNING if warning else OK,
        reason=f"{warning}: {REASONS[warning]}" if warning else None,
        transfer_syntax_uid=ts or None,
        fields=fields,
        bytes_read=bytes_read,
    )


def _inferred_syntax(ds: Dataset) -> str:
    implicit = getattr(ds, "is_implicit_VR", None)
    little = getattr(ds, "is_little_endian", None)
    if implicit:
        return "1.2.840.10008.1.2"
    if little is False:
        return _BIG_ENDIAN
    return "1.2.840.10008.1.2.1" if implicit is False else ""


def _value(ds: Dataset, keyword: str, name: str) -> Any:
    try:
        value = ds.get(keyword)
    except Exception:  # noqa: BLE001  (a malformed value is left out, never echoed)
        return None
    if value is None or value == "":
        return None
    try:
        if name == "image_type":
            return [str(v).strip() for v in value] if not isinstance(value, str) else [value.strip()]
        if name in _INT_FIELDS:
            return int(value)
        if name in _DATE_FIELDS:
            return _da(str(value))
        return str(value).strip() or None
    except (TypeError, ValueError):
        return None


def _da(text: str) -> date | None:
    text = text.strip()
    if len(text) != 8 or not text.isdigit():
        return None
    try:
        return date(int(text[:4]), int(text[4:6]), int(text[6:]))
    except ValueError:
        return None


# --- The fast path -----------------------------------------------------------------------
# A walk over element headers (jumping over values, stepping through sequence items) finds
# the few attributes the catalog keeps at a fraction of the cost of a full pydicom parse.

_UNDEFINED = 0xFFFFFFFF
_ITEM, _ITEM_END, _SEQUENCE_END = 0xFFFEE000, 0xFFFEE00D, 0xFFFEE0DD
_LONG_VRS = frozenset(b"OB OD OF OL OV OW SQ SV UC UN UR UT UV".split())
_IMPLICIT_LE = "1.2.840.10008.1.2"
_SIMPLE_CODECS = {"": "latin_1", "ISO_IR 6": "latin_1", "ISO_IR 100": "latin_1", "ISO_IR 192": "utf_8"}
_SCAN_TAGS: dict[int, tuple[str, str]] = {tag: (name, _KINDS.get(name, "text")) for tag, name in _FIELDS.values()}
_FIELD_NAMES = tuple(name for _, name in _FIELDS.values())
_CHARSET_TAG = 0x00080005


def _scan_prefix(data: bytes, object_size: int) -> Header:
    """The fast path of ``parse_prefix``; raises ``_Fallback`` or ``_NeedMore``."""
    whole = len(data) >= object_size
    if data[128:132] != b"DICM":
        raise _Fallback
    pos, syntax = _scan_meta(data, 132, whole)
    if syntax == _IMPLICIT_LE:
        explicit = False
    elif syntax.startswith("1.2.840.10008.1.2.") and syntax not in (_BIG_ENDIAN, _DEFLATED):
        explicit = True
    else:
        raise _Fallback
    found: dict[int, tuple[bytes, bytes]] = {}
    walker = _Walker(data, object_size, explicit)
    pixel = walker.dataset(pos, found)
    if pixel is not None:
        start, length = pixel
        if length != _UNDEFINED and start + length > object_size:
            code = "absurd_element_length" if length > object_size else "truncated"
            return failure(code, len(data))
    return _header_from_raw(found, syntax, len(data))


def _scan_meta(data: bytes, pos: int, whole: bool) -> tuple[int, str]:
    syntax = ""
    while True:
        if pos + 8 > len(data):
            raise _Fallback  # a file that is only meta, or a meta longer than the prefix: rare
        group, element = unpack_from("<HH", data, pos)
        if group != 0x0002:
            return pos, syntax
        vr = data[pos + 4 : pos + 6]
        if vr in _LONG_VRS:
            (length,) = unpack_from("<L", data, pos + 8)
            start = pos + 12
        else:
            (length,) = unpack_from("<H", data, pos + 6)
            start = pos + 8
        if length == _UNDEFINED or start + length > len(data):
            raise _Fallback
        if element == 0x0010:
            syntax = data[start : start + length].decode("ascii", "replace").strip("\x00 ")
        pos = start + length


_EXPLICIT_HEADER = Struct("<HH2sH")  # group, element, VR, 16-bit length
_TAG_LENGTH = Struct("<HHL")  # group, element, 32-bit length: implicit VR and items
_LENGTH = Struct("<L")  # the 32-bit length of an explicit long-VR element
_VR_LETTERS = frozenset(bytes((a, b)) for a in range(65, 91) for b in range(65, 91))
_IS_LONG_VR = {vr: vr in _LONG_VRS for vr in _VR_LETTERS}  # no entry: not a VR
_WANTED_TAGS = frozenset(_SCAN_TAGS) | {_CHARSET_TAG}


class _Walker:
    """Walks element headers of a little endian data set in a prefix of an object."""

    def __init__(self, data: bytes, object_size: int, explicit: bool) -> None:
        self.data = data
        self.size = len(data)
        self.object_size = object_size
        self.whole = self.size >= object_size
        self.explicit = explicit

    def _need(self, end: int) -> None:
        if end > self.size:
            if self.whole:
                raise _Truncated
            raise _NeedMore(end)

    def _element(self, pos: int) -> tuple[int, bytes, int, int]:
        """(tag, vr, value length, value start) of the element at ``pos``."""
        if pos + 8 > self.size:
            self._need(pos + 8)
        if self.explicit:
            group, element, vr, length = _EXPLICIT_HEADER.unpack_from(self.data, pos)
            if group != 0xFFFE:
                if vr in _LONG_VRS:
                    if pos + 12 > self.size:
                        self._need(pos + 12)
                    return group << 16 | element, vr, _LENGTH.unpack_from(self.data, pos + 8)[0], pos + 12
                if vr not in _VR_LETTERS:
                    raise _Fallback  # not a VR: implicit elements inside explicit data, say
                return group << 16 | element, vr, length, pos + 8
        group, element, length = _TAG_LENGTH.unpack_from(self.data, pos)
        return group << 16 | element, b"", length, pos + 8

    def dataset(self, pos: int, found: dict[int, tuple[bytes, bytes]]) -> tuple[int, int] | None:
        """Walk the top-level data set; return (value start, length) of Pixel Data if present.

        The hot loop of a sync, so explicit VR elements well inside the prefix are decoded
        inline; items, odd VRs, implicit VR and the prefix's end take ``_element``."""
        data, size, object_size, explicit = self.data, self.size, self.object_size, self.explicit
        while pos < object_size:
            long_vr = None
            if explicit and pos + 12 <= size:
                group, element, vr, length = _EXPLICIT_HEADER.unpack_from(data, pos)
                long_vr = _IS_LONG_VR.get(vr) if group != 0xFFFE else None
            if long_vr is None:
                tag, vr, length, start = self._element(pos)
            else:
                tag = group << 16 | element
                if long_vr:
                    length, start = _LENGTH.unpack_from(data, pos + 8)[0], pos + 12
                else:
                    start = pos + 8
            if tag in _PIXEL_TAGS:
                return start, length
            if length == _UNDEFINED:
                pos = self._skip_undefined(start)
                continue
            if length > object_size:
                raise _AbsurdLength
            pos = start + length
            if tag in _WANTED_TAGS:
                if pos > size:
                    self._need(pos)
                found[tag] = (vr, data[start:pos])
        if pos > object_size:
            raise _Truncated
        return None

    def _skip_undefined(self, pos: int) -> int:
        """Skip a value of undefined length (a sequence of items); return the position after it."""
        while True:
            tag, _, length, start = self._element(pos)
            if tag == _SEQUENCE_END:
                return start
            if tag != _ITEM:
                raise _Fallback
            pos = self._skip_item(start) if length == _UNDEFINED else start + length

    def _skip_item(self, pos: int) -> int:
        while True:
            tag, _, length, start = self._element(pos)
            if tag == _ITEM_END:
                return start
            if length == _UNDEFINED:
                pos = self._skip_undefined(start)
            elif length > self.object_size:
                raise _AbsurdLength
            else:
                pos = start + length


def _header_from_raw(found: dict[int, tuple[bytes, bytes]], syntax: str, bytes_read: int) -> Header:
    charset = found.pop(_CHARSET_TAG, (b"", b""))[1].decode("ascii", "replace").strip("\x00 ")
    codec = _SIMPLE_CODECS.get(charset)
    if codec is None:
        raise _Fallback
    fields: dict[str, Any] = dict.fromkeys(_FIELD_NAMES)
    for tag, (vr, raw) in found.items():
        name, kind = _SCAN_TAGS[tag]
        fields[name] = _decode(kind, vr, raw, codec)
    if fields["number_of_frames"] is None and fields["rows"] is not None:
        fields["number_of_frames"] = 1
    warning = None if fields["sop_instance_uid"] else "no_sop_instance_uid"
    return Header(
        status=WARNING if warning else OK,
        reason=f"{warning}: {REASONS[warning]}" if warning else None,
        transfer_syntax_uid=syntax,
        fields=fields,
        bytes_read=bytes_read,
    )


def _decode(kind: str, vr: bytes, raw: bytes, codec: str) -> Any:
    if kind == "us":
        if vr not in (b"", b"US") or len(raw) != 2:
            raise _Fallback
        return unpack_from("<H", raw)[0]
    text = raw.decode(codec, "replace").strip("\x00 ")
    if not text:
        return None
    if kind == "multi":
        return [v.strip() for v in text.split("\\")]
    if "\\" in text:
        raise _Fallback  # several values where the catalog keeps one: let pydicom decide
    if kind == "da":
        return _da(text)
    if kind == "int":
        try:
            return int(text)
        except ValueError:
            return None
    return text


def read_header(
    fetch: Callable[[int, int], bytes],
    object_size: int,
    *,
    header_bytes: int = 65536,
    max_header_bytes: int = 16 * 1024 * 1024,
) -> Header:
    """Catalog one object: ``fetch(start, length)`` reads a byte range of it.

    Reads ``header_bytes`` first; when the header is longer, extends the prefix
    (at least doubling) up to ``max_header_bytes``. Errors of the store propagate;
    anything wrong with the bytes becomes a ``Header`` with status error."""
    data = fetch(0, min(header_bytes, object_size)) if object_size else b""
    while True:
        try:
            header = parse_prefix(data, max(object_size, len(data)))
        except _NeedMore as more:
            target = min(object_size, max(more.upto, 2 * len(data)))
            if target <= len(data):
                return failure("unreadable", len(data))
            if target > max_header_bytes:
                return failure("header_too_long", len(data))
            data += fetch(len(data), target - len(data))
            if len(data) < target:  # the object shrank under us
                return failure("truncated", len(data))
            continue
        except Exception:  # noqa: BLE001  (one odd object must never stop a sync)
            return failure("unreadable", len(data))
        header.bytes_read = len(data)
        return header
