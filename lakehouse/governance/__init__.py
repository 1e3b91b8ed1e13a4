"""Governance: export requests, decisions, frozen manifests, opt-outs, audit chain.

Everything lives as Delta tables in the restricted zone (``governance/…``);
request state is derived from append-only events. See ``requests`` for how
concurrent decisions are serialized and ``audit`` for the hash chain.

Exports load on first use (``lakehouse._lazy``): a command pays only for the modules it runs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from lakehouse._lazy import lazy_exports

if TYPE_CHECKING:
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

__getattr__ = lazy_exports(
    __name__,
    {
        "AuditHead": "audit",
        "AuditVerification": "audit",
        "BrokenLink": "audit",
        "Checkpoint": "audit",
        "append_audit": "audit",
        "current_head": "audit",
        "list_audit": "audit",
        "verify_audit": "audit",
        "CohortPreview": "cohort",
        "parse_cohort": "cohort",
        "ManifestEntry": "manifest",
        "OptOut": "optout",
        "add_optout": "optout",
        "list_optouts": "optout",
        "opted_out_patient_ids": "optout",
        "Decision": "requests",
        "Permission": "requests",
        "Request": "requests",
        "approve": "requests",
        "get_request": "requests",
        "list_requests": "requests",
        "load_manifest": "requests",
        "may_run": "requests",
        "reject": "requests",
        "revoke": "requests",
        "submit_request": "requests",
        "preview": "requests:preview_cohort",
        "require_role": "roles",
        "roles_of": "roles",
        "browse_requests": "views",
        "show_request": "views",
    },
)

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
