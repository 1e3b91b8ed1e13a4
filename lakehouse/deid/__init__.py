"""De-identification: the PS3.15 Annex E profile and options, keyed pseudonyms, date shifting,
burned-in triage (``pixels``) and the residual-PHI scan.

The export calls ``deidentify`` per object (in process pools and Spark): it is pure, its
arguments and results pickle, and it quarantines instead of raising. Keys come from
``lakehouse.deid.keys.load_project_key`` (the only module here that touches config/storage).
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
