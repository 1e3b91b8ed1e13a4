"""What the CLI shows people: request views, reviews and listings, role-checked and audited."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from lakehouse.config import Settings
from lakehouse.governance.audit import append_audit
from lakehouse.governance.requests import Request, get_request, list_requests
from lakehouse.governance.review import Review, build_review
from lakehouse.governance.roles import ROLES, require_role


def show_request(
    settings: Settings, request_id: str, *, user: str, action: str = "request.show", now: datetime | None = None
) -> tuple[Request, Review]:
    """A request with its full decision history and a fresh review (suppressed counts only).
    ``action`` names the audit event: ``request.show`` or ``request.review`` (the HTML file)."""
    require_role(settings, user, *ROLES)
    request = get_request(settings, request_id, now=now)
    review = build_review(settings, request)
    append_audit(
        settings,
        user=user,
        action=action,
        request_id=request_id,
        now=now,
        details={"status": request.status, "catalog_version": review.catalog_version},
    )
    return request, review


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
