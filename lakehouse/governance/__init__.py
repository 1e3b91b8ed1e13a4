"""Governance: export requests, decisions, frozen manifests, opt-outs, audit chain.

Everything lives as Delta tables in the restricted zone (``governance/…``);
request state is derived from append-only events. See ``requests`` for how
concurrent decisions are serialized and ``audit`` for the hash chain.
"""

from __future__ import annotations

from lakehouse.governance.audit import (
    AuditHead,
    AuditVerification,
    BrokenLink,
    Checkpoint,
    append_audit,
    current_head,
    list_audit,
    verify_audit,
)
from lakehouse.governance.cohort import CohortPreview, parse_cohort
from lakehouse.governance.manifest import ManifestEntry
from lakehouse.governance.optout import OptOut, add_optout, list_optouts, opted_out_patient_ids
from lakehouse.governance.requests import (
    Decision,
    Permission,
    Request,
    approve,
    get_request,
    list_requests,
    load_manifest,
    may_run,
    reject,
    revoke,
    submit_request,
)
from lakehouse.governance.requests import preview_cohort as preview
from lakehouse.governance.roles import require_role, roles_of
from lakehouse.governance.views import browse_requests, show_request

__all__ = [
    "AuditHead",
    "AuditVerification",
    "BrokenLink",
    "Checkpoint",
    "CohortPreview",
    "Decision",
    "ManifestEntry",
    "OptOut",
    "Permission",
    "Request",
    "add_optout",
    "append_audit",
    "approve",
    "browse_requests",
    "current_head",
    "get_request",
    "list_audit",
    "list_optouts",
    "list_requests",
    "load_manifest",
    "may_run",
    "opted_out_patient_ids",
    "parse_cohort",
    "preview",
    "reject",
    "require_role",
    "revoke",
    "roles_of",
    "show_request",
    "submit_request",
    "verify_audit",
]
