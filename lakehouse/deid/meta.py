"""File meta rebuilt from scratch and the de-identification record (PS3.3 C.12.1.1.3).

Nothing of the source meta is carried over: no Source/Sending/Receiving AE Title, no source
implementation class or version, no private meta; only the transfer syntax of the pixel data.
"""

from __future__ import annotations

from typing import Any

from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import UID, ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

from lakehouse.deid.options import method_codes

# 2.25 UID: first 128 bits of SHA-256("lakehouse implementation class") (PS3.5 B.2).
IMPLEMENTATION_CLASS_UID = "2.25.304714826324063156414613553275958213621"
IMPLEMENTATION_VERSION_NAME = "LAKEHOUSE_DEID_1"

TEMPORAL_STATUS = {"full": "UNMODIFIED", "modified": "MODIFIED", None: "REMOVED"}


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
    meta = FileMetaDataset()
    # The elements ``meta.<Keyword> = value`` makes, without the keyword lookups.
    for tag, vr, value in (
        (0x00020001, "OB", b"\x00\x01"),  # File Meta Information Version
        (0x00020002, "UI", ds.SOPClassUID),  # Media Storage SOP Class UID
        (0x00020003, "UI", ds.SOPInstanceUID),  # Media Storage SOP Instance UID
        (0x00020010, "UI", UID(transfer_syntax)),  # Transfer Syntax UID
        (0x00020012, "UI", UID(IMPLEMENTATION_CLASS_UID)),  # Implementation Class UID
        (0x00020013, "SH", IMPLEMENTATION_VERSION_NAME),  # Implementation Version Name
    ):
        meta[tag] = DataElement(tag, vr, value)
    ds.file_meta = meta
    ds.preamble = b"\x00" * 128


def record_method(ds: Dataset, options: frozenset[str], edition: str, date_mode: str | None) -> None:
    """PatientIdentityRemoved, DeidentificationMethod (+ CID 7050 codes), temporal status."""
    _put(ds, 0x00120062, "CS", "YES")  # Patient Identity Removed
    _put(ds, 0x00120063, "LO", [f"DICOM PS3.15 {edition} Basic Profile (lakehouse)", *sorted(options)])
    items = []
    for value, scheme, meaning in method_codes(options):
        item = Dataset()
        item[0x00080100] = DataElement(0x00080100, "SH", value)  # Code Value
        item[0x00080102] = DataElement(0x00080102, "SH", scheme)  # Coding Scheme Designator
        item[0x00080104] = DataElement(0x00080104, "LO", meaning)  # Code Meaning
        items.append(item)
    _put(ds, 0x00120064, "SQ", items)  # De-identification Method Code Sequence
    _put(ds, 0x00280303, "CS", TEMPORAL_STATUS[date_mode])  # Longitudinal Temporal Information Modified


def _put(ds: Dataset, tag: int, vr: str, value: Any) -> None:
    """What ``ds.<Keyword> = value`` does (an existing element keeps its VR), minus the keyword
    lookups: this runs once per object."""
    if tag in ds._dict:
        elem = ds[tag]
        elem.value = value
    else:
        elem = DataElement(tag, vr, value)
    ds[tag] = elem
