"""File meta rebuilt from scratch and the de-identification record (PS3.3 C.12.1.1.3).

Nothing of the source meta is carried over: no Source/Sending/Receiving AE Title, no source
implementation class or version, no private meta; only the transfer syntax of the pixel data.
"""

from __future__ import annotations

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

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
    meta.FileMetaInformationVersion = b"\x00\x01"
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = transfer_syntax
    meta.ImplementationClassUID = IMPLEMENTATION_CLASS_UID
    meta.ImplementationVersionName = IMPLEMENTATION_VERSION_NAME
    ds.file_meta = meta
    ds.preamble = b"\x00" * 128


def record_method(ds: Dataset, options: frozenset[str], edition: str, date_mode: str | None) -> None:
    """PatientIdentityRemoved, DeidentificationMethod (+ CID 7050 codes), temporal status."""
    ds.PatientIdentityRemoved = "YES"
    ds.DeidentificationMethod = [f"DICOM PS3.15 {edition} Basic Profile (lakehouse)", *sorted(options)]
    items = []
    for value, scheme, meaning in method_codes(options):
        item = Dataset()
        item.CodeValue = value
        item.CodingSchemeDesignator = scheme
        item.CodeMeaning = meaning
        items.append(item)
    ds.DeidentificationMethodCodeSequence = items
    ds.LongitudinalTemporalInformationModified = TEMPORAL_STATUS[date_mode]
