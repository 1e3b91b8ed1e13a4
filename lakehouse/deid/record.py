"""The de-identification record in the object itself (PS3.3 C.12.1.1.3): Patient Identity
Removed, the method (text and CID 7050 codes) and what happened to dates."""

from __future__ import annotations

from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset

from lakehouse.deid.options import method_codes
from lakehouse.dicom.elements import put

TEMPORAL_STATUS = {"full": "UNMODIFIED", "modified": "MODIFIED", None: "REMOVED"}
#: Tag paths of what ``record_method`` writes, whole: fixed text of ours, never the source's.
RECORDED_TAG_PATHS = ("(0012,0062)", "(0012,0063)", "(0012,0064)", "(0028,0303)")


def record_method(ds: Dataset, options: frozenset[str], edition: str, date_mode: str | None,
                  generalizations: tuple[str, ...] = ()) -> None:
    """PatientIdentityRemoved, DeidentificationMethod (+ CID 7050 codes, and the k-anonymity
    generalizations applied, e.g. ``generalized age-5y``), temporal status."""
    put(ds, 0x00120062, "CS", "YES")  # Patient Identity Removed
    method = [f"DICOM PS3.15 {edition} Basic Profile (lakehouse)", *sorted(options)]
    put(ds, 0x00120063, "LO", method + [f"generalized {step}" for step in generalizations])
    items = []
    for value, scheme, meaning in method_codes(options):
        item = Dataset()
        item[0x00080100] = DataElement(0x00080100, "SH", value)  # Code Value
        item[0x00080102] = DataElement(0x00080102, "SH", scheme)  # Coding Scheme Designator
        item[0x00080104] = DataElement(0x00080104, "LO", meaning)  # Code Meaning
        items.append(item)
    put(ds, 0x00120064, "SQ", items)  # De-identification Method Code Sequence
    put(ds, 0x00280303, "CS", TEMPORAL_STATUS[date_mode])  # Longitudinal Temporal Information Modified
