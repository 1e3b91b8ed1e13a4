"""Elements of a pydicom dataset read and rewritten in place, through pydicom's public API,
without decoding values that are only looked at.

pydicom keeps each element of a dataset it read raw (``RawDataElement``: tag, VR, length,
value bytes) until a value is asked for with ``ds[tag]``; it then decodes the value and
stores a ``DataElement`` in its place. The Part 10 writer (``part10``) copies raw elements
byte for byte, so code that only looks at elements walks them as stored
(``Dataset.items()``, ``Dataset.get_item(tag, keep_deferred=True)``) and decodes text on
the side (``value_text``); only code that changes a value converts its element
(``ds[tag]``, ``set_value``, ``put``).

``text_values`` is the raw walker: every text value at every depth, depth first, with the
tag path that names it in reports (``(0040,A730)[1].(0040,A160)``).
"""

from __future__ import annotations

from collections.abc import Iterator, MutableSequence
from typing import Any

from pydicom import config
from pydicom.charset import convert_encodings, default_encoding
from pydicom.datadict import dictionary_VR
from pydicom.dataelem import DataElement, RawDataElement, convert_raw_data_element
from pydicom.dataset import Dataset
from pydicom.hooks import hooks, raw_element_value, raw_element_vr
from pydicom.multival import MultiValue
from pydicom.tag import BaseTag

__all__ = [
    "STRING_VRS",
    "element_vr",
    "known_vr",
    "put",
    "raw_strings",
    "replaced_value",
    "sequence",
    "set_value",
    "tag_text",
    "text_encoding",
    "text_values",
    "text_values_by_tag",
    "value_text",
    "values_of",
]

#: VRs whose values are character strings (PS3.5 Table 6.2-1), PN excepted.
STRING_VRS = frozenset(
    {"AE", "AS", "CS", "DA", "DS", "DT", "IS", "LO", "LT", "PN", "SH", "ST", "TM", "UC", "UI", "UR", "UT"}
)
SPECIFIC_CHARACTER_SET = BaseTag(0x00080005)
UNDEFINED_LENGTH = 0xFFFFFFFF
# Raw UI/DA/DT values decoded here (``replaced_value``): always in the default encoding.
DECODED_FROM_RAW_VRS = frozenset({"UI", "DA", "DT"})
# Read as text from raw bytes (``value_text``): always default-encoded, or in the dataset's charset.
ASCII_TEXT_VRS = frozenset({"AE", "CS", "DA", "DT", "UI", "UR"})
CHARSET_TEXT_VRS = frozenset({"LO", "LT", "SH", "ST", "UC", "UT"})
# Raw values ``raw_strings`` decodes with the default encoding (DA, DT, TM only as strings).
DEFAULT_DECODED_VRS = frozenset({"AE", "AS", "CS", "UI", "UR"})
DATETIME_VRS = frozenset({"DA", "DT", "TM"})
SINGLE_BYTE_CODECS = frozenset({"iso8859", "latin_1"})  # pydicom's names for ISO_IR 100 / none

Element = DataElement | RawDataElement


def element_vr(ds: Dataset, tag: int, stored: Element | None = None) -> str:
    """The element's VR: as stored (``stored``, when the caller walked ``ds.items()``), else,
    for implicit-VR reads and deferred values, pydicom's (reading the value), the data
    dictionary's, or UN. A standard attribute stored with explicit VR UN has its dictionary
    VR (``known_vr``)."""
    if stored is not None and stored.VR and not (stored.is_raw and stored.value is None):
        if stored.VR == "UN" and isinstance(stored, RawDataElement):
            return known_vr(stored) or "UN"
        return str(stored.VR)
    elem = ds.get_item(tag)
    vr = elem.VR if elem is not None else None
    if vr:
        return str(vr)
    try:
        return str(dictionary_VR(tag))
    except KeyError:
        return "UN"


def known_vr(raw: RawDataElement) -> str | None:
    """The dictionary VR of a standard attribute stored raw with explicit VR UN, when pydicom
    converts its value by that VR (``config.replace_un_with_known_vr``, on by default; values
    of 64 KiB and more stay UN); else None.

    PS3.5 6.2.2: UN is for an attribute whose VR the writer did not know. Treated as bytes, a
    UN UID would be replaced by a dummy of NUL bytes and a UN name would escape the name
    checks, so the profile sees these attributes by the VR the standard gives them."""
    tag = raw.tag
    if (not config.replace_un_with_known_vr or (tag >> 16) & 1 or tag & 0xFFFF == 0
            or (raw.value is not None and len(raw.value) >= 0xFFFF)):
        return None
    try:
        vr = str(dictionary_VR(tag))
    except KeyError:
        return None
    return vr if len(vr) == 2 else None  # "US or SS" and the like: pydicom decides on conversion


def values_of(value: Any) -> list[Any]:
    """One value or a multi-value as a list."""
    return list(value) if isinstance(value, MultiValue | list) else [value]


def replaced_value(ds: Dataset, tag: int, vr: str) -> Any:
    """The value of a UI, DA or DT element about to be replaced, as pydicom converts it.

    A raw value is decoded here (default encoding, trailing spaces/NULs stripped, split at
    ``\\``: pydicom's ``multi_string``) instead of converting an element that is replaced
    anyway; ``set_value`` then puts a new element in its place. Empty, private, undefined
    length or VR-less elements take pydicom's conversion (which may write them differently).
    """
    raw = ds.get_item(tag, keep_deferred=True)
    if isinstance(raw, RawDataElement) and vr in DECODED_FROM_RAW_VRS and _replaceable(raw, vr):
        items = raw.value.decode(default_encoding).rstrip(" \x00").split("\\")
        if items != [""]:
            return items[0] if len(items) == 1 else items
    return ds[tag].value


def _replaceable(raw: RawDataElement, vr: str) -> bool:
    """Whether a new element of ``vr`` is what converting ``raw`` and assigning would give:
    the VR as read (explicit, not UN), a value read (not deferred) of defined length, and not
    private (pydicom gives those their creator)."""
    return (raw.VR == vr and vr != "UN" and isinstance(raw.value, bytes)
            and raw.length != UNDEFINED_LENGTH and not (raw.tag >> 16) & 1)


def set_value(ds: Dataset, tag: int, vr: str, value: Any) -> None:
    """Give the element a new value: a raw element is replaced by a new one (what converting
    and assigning gives, see ``_replaceable``; else it is converted), a converted one keeps
    its VR."""
    stored = ds.get_item(tag, keep_deferred=True)
    if isinstance(stored, RawDataElement):
        if _replaceable(stored, vr):
            ds[stored.tag] = DataElement(stored.tag, vr, value)
            return
        stored = ds[tag]
    stored.value = value


def sequence(ds: Dataset, tag: int) -> DataElement:
    """``ds[tag]`` for a sequence element. A raw one (explicit VR SQ, value read) is converted
    and stored as ``ds[tag]`` does, minus its repeated look-ups and its second pass setting
    Pixel Representation on the items (``Dataset.__setitem__`` already set the same); else
    ``ds[tag]``."""
    raw = ds.get_item(tag, keep_deferred=True)
    charset = ds.original_character_set
    if isinstance(raw, RawDataElement) and raw.VR == "SQ" and raw.value is not None and charset:
        elem = convert_raw_data_element(raw, encoding=charset, ds=ds)
        ds[raw.tag] = elem
        return elem
    return ds[tag]


def raw_strings(ds: Dataset, stored: Element | None) -> list[str] | None:
    """``[str(v) for v in values_of(ds[tag].value)]`` of a raw string element, without
    converting it; None when only pydicom's conversion can tell (not raw, not
    ``_replaceable``, empty, ISO 2022 escapes, a multi-byte or failing character set, other
    VRs, datetime conversion, strict validation or conversion hooks).

    Mirrors ``pydicom.values``: the text is decoded (the dataset's character set for PN, LO,
    SH, UC, LT, ST, UT; the default one otherwise), split at ``\\`` except for LT, ST, UT and
    UR, and trimmed as each converter trims it."""
    if not isinstance(stored, RawDataElement) or not stored.VR or not _plain_conversion():
        return None
    vr, value = str(stored.VR), stored.value
    if (not isinstance(value, bytes) or not _replaceable(stored, vr) or stored.length == 0
            or stored.length != len(value) or b"\x1b" in value):
        return None
    if vr in CHARSET_TEXT_VRS or vr == "PN":
        charset = ds.original_character_set
        codecs = [charset] if isinstance(charset, str) else list(charset or [])
        if len(codecs) != 1 or codecs[0] not in SINGLE_BYTE_CODECS:
            return None
        codec = codecs[0]
    elif vr in DEFAULT_DECODED_VRS or (vr in DATETIME_VRS and not config.datetime_conversion):
        codec = default_encoding
    else:
        return None
    try:
        text = (value.rstrip(b"\x00 ") if vr == "PN" else value).decode(codec)
    except UnicodeDecodeError:
        return None
    if vr == "PN" and "=" in text:  # PersonName drops empty component groups: let pydicom tell
        return None
    if vr in ("LT", "ST", "UT"):
        items = [text.rstrip("\0 ")]
    elif vr == "UR":
        items = [text.rstrip()]
    elif vr == "AE":
        items = [v.strip() for v in text.split("\\")]
    elif vr == "UI":  # multi_string of pydicom's UID, which strips each value
        items = [v.strip() for v in text.rstrip(" \x00").split("\\")]
    elif vr in ("LO", "SH", "UC"):
        items = [v.rstrip("\0 ") for v in text.split("\\")]
    else:  # PN (stripped above), CS, AS, DA, DT, TM: pydicom's multi_string
        items = text.rstrip(" \x00").split("\\")
    return [] if items == [""] else items


def _plain_conversion() -> bool:
    """pydicom converts raw elements with its own hooks and does not raise on invalid values."""
    return (config.data_element_callback is None and not hooks.raw_element_kwargs
            and hooks.raw_element_vr is raw_element_vr and hooks.raw_element_value is raw_element_value
            and config.settings.reading_validation_mode != config.RAISE)


def put(ds: Dataset, tag: int, vr: str, value: Any) -> None:
    """What ``ds.<Keyword> = value`` does (an existing element keeps its VR), minus the
    keyword lookups."""
    if tag in ds:
        elem = ds[tag]
        elem.value = value
    else:
        elem = DataElement(tag, vr, value)
    ds[tag] = elem


def tag_text(tag: int) -> str:
    return f"({tag >> 16:04X},{tag & 0xFFFF:04X})"


def text_encoding(ds: Dataset) -> str | MutableSequence[str]:
    """The character set pydicom decodes the dataset's raw text with: the one it was read
    with; for a dataset built in memory, its own Specific Character Set, else the default."""
    read_with = ds.original_character_set
    if read_with:
        return read_with
    declared = ds.get_item(SPECIFIC_CHARACTER_SET, keep_deferred=True)
    if declared is None:
        return default_encoding
    return convert_encodings(ds[SPECIFIC_CHARACTER_SET].value)


def text_values(ds: Dataset, vrs: frozenset[str]) -> Iterator[tuple[str, str, str]]:
    """``(tag path, VR, text)`` of every non-empty value whose VR is in ``vrs``, at every depth,
    depth first in the dataset's element order. Values stay as stored (raw ones are decoded
    for the caller only, so the writer still copies them byte for byte, and their text may
    keep its trailing padding); UN values are read as Latin-1; multiple values are joined
    with ``\\``."""
    for prefix, tag, vr, text in _text_values(ds, vrs, ""):
        yield prefix + tag_text(tag), vr, text


def text_values_by_tag(ds: Dataset, vrs: frozenset[str]) -> Iterator[tuple[str, int, str, str]]:
    """``text_values`` as ``(path of the enclosing item, tag, VR, text)``: the tag path is
    ``prefix + tag_text(tag)``, built only by callers that report it."""
    return _text_values(ds, vrs, "")


def _text_values(ds: Dataset, vrs: frozenset[str], prefix: str) -> Iterator[tuple[str, int, str, str]]:
    for tag, stored in list(ds.items()):
        vr = stored.VR
        if not vr or (stored.is_raw and stored.value is None):
            vr = element_vr(ds, tag)  # no VR, or a deferred read: the slow, exact way
            stored = ds.get_item(tag, keep_deferred=True)
        if vr == "SQ":
            for i, item in enumerate(ds[tag].value or []):
                yield from _text_values(item, vrs, f"{prefix}{tag_text(tag)}[{i}].")
        elif vr not in vrs:
            continue
        elif vr == "UN":
            value = ds.get_item(tag).value
            if isinstance(value, bytes) and value:
                yield prefix, tag, vr, value.decode("latin-1")
        else:
            text = value_text(ds, tag, stored)
            if text is not None:
                yield prefix, tag, vr, text


def value_text(ds: Dataset, tag: int, stored: Element) -> str | None:
    """The value as text (``\\``-joined), or None when empty.

    A raw element is converted exactly as ``Dataset.__getitem__`` would, but the result is
    not stored in the dataset.
    """
    if isinstance(stored, RawDataElement):
        text = _raw_text(ds, stored)
        if text is not None:
            return text or None
        if stored.value is None and stored.length != 0:
            stored = ds[tag]  # deferred read: let pydicom fetch and convert it
        else:
            charset = text_encoding(ds) if tag != SPECIFIC_CHARACTER_SET else default_encoding
            stored = convert_raw_data_element(stored, encoding=charset, ds=ds)
    value = stored.value
    if value is None or value == "":
        return None
    if isinstance(value, list | tuple | MultiValue):
        return "\\".join(str(v) for v in value)
    return str(value)


def _raw_text(ds: Dataset, elem: RawDataElement) -> str | None:
    """A raw value's text without pydicom's conversion, where that finds the same words.

    pydicom decodes these VRs with the default encoding or a single ASCII-compatible
    character set and strips trailing spaces/NULs from each value. Those are never part
    of a word nor word characters themselves, so a search for whole words finds the same
    in the undecoded text. Returns "" for a blank value, None when pydicom must convert
    (deferred value, other VRs or character sets, undecodable).
    """
    value, vr = elem.value, elem.VR
    if not isinstance(value, bytes) or not vr or b"\x1b" in value:  # ESC: pydicom decodes ISO 2022
        return None
    if vr in ASCII_TEXT_VRS:
        codec = default_encoding
    elif vr in CHARSET_TEXT_VRS:
        charset = text_encoding(ds)
        codecs = [charset] if isinstance(charset, str) else list(charset)
        if len(codecs) != 1 or codecs[0] not in SINGLE_BYTE_CODECS:
            return None
        codec = codecs[0]
    else:
        return None
    try:
        text = value.decode(codec)
    except UnicodeDecodeError:
        return None
    return text if text.rstrip(" \x00") else ""
