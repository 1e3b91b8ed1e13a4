"""What the CLI shows people: request views and listings, role-checked and audited."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from lakehouse.config import Settings
from lakehouse.governance.audit import append_audit
from lakehouse.governance.cohort import CohortPreview
from lakehouse.governance.requests import Request, get_request, list_requests, preview_cohort
from lakehouse.governance.roles import ROLES, require_role


def show_request(
    settings: Settings, request_id: str, *, user: str, now: datetime | None = None
) -> tuple[Request, CohortPreview]:
    """A request with its full decision history and a fresh preview (counts only)."""
    require_role(settings, user, *ROLES)
    request = get_request(settings, request_id, now=now)
    preview = preview_cohort(settings, request.cohort)
    append_audit(
        settings,
        user=user,
        action="request.show",
        request_id=request_id,
        now=now,
        details={"status": request.status, "preview_instances": preview.instances},
    )
    return request, preview


def browse_requests(
    settings: Settings,
    *,
    user: str,
    status: str | None = None,
    project: str | None = None,
    now: datetime | None = None,
) -> list[Request]:
    require_role(settings, user, *ROLES)
    found = list_requests(settings, status=status, project=project, now=now)
    details: dict[str, Any] = {"count": len(found), "status": status, "project": project}
    append_audit(settings, user=user, action="request.list", details=details, now=now)
    return found
