"""De-identification: the PS3.15 Annex E profile and options, keyed pseudonyms, date shifting,
burned-in triage (``pixels``) and the residual-PHI scan.

The export calls ``deidentify`` per object (in process pools and Spark): it is pure, its
arguments and results pickle, and it quarantines instead of raising. It receives the
project's key in ``DeidSettings`` (the export finds it: ``lakehouse.export.keys``) and reads
no settings or storage. DICOM encoding (element access, the raw walker, the Part 10 writer)
is ``lakehouse.dicom``'s.

Modules: ``engine`` (one object, start to end), ``options`` and ``profile`` (the tables as
data), ``actions`` (the profile applied to the header), ``clean_text`` (the C action),
``pseudonyms``, ``identifying`` (which attributes identify), ``residual`` (the scan),
``record`` (the de-identification record), ``pixels`` and ``ocr``, ``batch`` (files and
folders), ``keys`` (parsing a key).
"""

from lakehouse.deid.engine import DeidResult, DeidSettings, deidentify
from lakehouse.deid.options import parse_options
from lakehouse.deid.profile import profile_label
from lakehouse.deid.pseudonyms import date_offset_days, pseudonymize_id, pseudonymize_uid

__all__ = [
    "DeidResult",
    "DeidSettings",
    "date_offset_days",
    "deidentify",
    "parse_options",
    "profile_label",
    "pseudonymize_id",
    "pseudonymize_uid",
]
