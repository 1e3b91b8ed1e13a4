"""`lakehouse request` commands: submit, list, show, approve, reject, revoke."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from lakehouse import governance
from lakehouse.cli._common import (
    ConfigOpt,
    JsonOpt,
    UserOpt,
    emit,
    plain,
    require_user,
    settings_from,
    timestamp,
)
from lakehouse.governance.cohort import load_cohort_file

app = typer.Typer(
    help="Export requests: submit a cohort for a stated purpose, then approve, reject or revoke it.\n\n"
    "Identity comes from --user or LAKEHOUSE_USER and is checked against the roles in the config; every command is audited.",
    no_args_is_help=True,
)

IdArg = Annotated[str, typer.Argument(help="Request id (req-…).")]
ReasonOpt = Annotated[
    str, typer.Option("--reason", help="Why (kept in the restricted zone, not in the audit).")
]


def _request_lines(req: governance.Request) -> list[str]:
    lines = [
        f"{req.id}  {req.status}  project {req.project}  requested by {req.requester}",
        f"  title: {req.title}",
        f"  protocol: {req.protocol}",
        f"  options: {', '.join(req.options) or 'none'}",
    ]
    if req.expires:
        lines.append(f"  expires: {req.expires} (end of day, UTC)")
    if req.manifest_sha256:
        lines.append(f"  manifest: {req.manifest_entries} objects, sha256 {req.manifest_sha256}")
    return lines


def _decision_lines(req: governance.Request) -> list[str]:
    lines = ["  history:"]
    for d in req.decisions:
        extra = f" until {d.expires}" if d.expires else ""
        extra += f" ({d.reason})" if d.reason else ""
        lines.append(f"    {d.seq}. {timestamp(d.at)} {d.action} by {d.user}{extra}")
    return lines


def _purpose_lines(req: governance.Request) -> list[str]:
    """Purpose and cohort criteria; identifier criteria (Patient IDs, ...) only as counts."""
    lines = [f"  purpose: {req.purpose}"]
    criteria = req.to_dict()["cohort"]
    if not criteria:
        return [*lines, "  cohort: the whole catalog (no criteria)"]
    return [*lines, "  cohort:", *(f"    {name}: {plain(value)}" for name, value in criteria.items())]


@app.command()
def submit(
    project: Annotated[str, typer.Option("--project", help="Research project the export is for.")],
    title: Annotated[str, typer.Option("--title", help="Short title.")],
    purpose: Annotated[str, typer.Option("--purpose", help="Stated purpose of the export.")],
    protocol: Annotated[str, typer.Option("--protocol", help="IRB / ethics protocol id.")],
    cohort: Annotated[
        Path, typer.Option("--cohort", help="Cohort criteria YAML (see schemas/governance/cohort.json).")
    ],
    option: Annotated[
        list[str] | None, typer.Option("--option", help="De-identification option (repeatable).")
    ] = None,
    user: UserOpt = None,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Submit a request; prints its id and a preview of the cohort (counts only)."""
    settings = settings_from(config)
    req = governance.submit_request(
        settings,
        user=require_user(user),
        project=project,
        title=title,
        purpose=purpose,
        protocol=protocol,
        cohort=load_cohort_file(cohort),
        options=option or [],
    )
    preview = governance.preview(settings, req.cohort)
    emit(
        {"id": req.id, "status": req.status, "preview": preview.to_dict()},
        as_json,
        [req.id, f"preview: {preview.summary_line()}"],
    )


@app.command("list")
def list_(
    status: Annotated[
        str | None, typer.Option("--status", help="pending, approved, rejected, revoked or expired.")
    ] = None,
    project: Annotated[str | None, typer.Option("--project", help="Only this project.")] = None,
    user: UserOpt = None,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List requests with their current status."""
    found = governance.browse_requests(
        settings_from(config), user=require_user(user), status=status, project=project
    )
    rows: list[dict[str, Any]] = [
        {
            "id": r.id,
            "status": r.status,
            "project": r.project,
            "title": r.title,
            "requester": r.requester,
            "submitted_at": r.submitted_at,
            "expires": r.expires,
        }
        for r in found
    ]
    text = [f"{r['id']}  {r['status']:<8}  {r['project']}  {r['title']}" for r in rows] or ["no requests"]
    emit({"requests": rows}, as_json, text)


@app.command()
def show(request_id: IdArg, user: UserOpt = None, config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """Show a request, its full decision history and a fresh preview (identifier criteria as counts)."""
    req, preview = governance.show_request(settings_from(config), request_id, user=require_user(user))
    emit(
        {**req.to_dict(), "preview": preview.to_dict()},
        as_json,
        [
            *_request_lines(req),
            *_purpose_lines(req),
            *_decision_lines(req),
            f"  preview now: {preview.summary_line()}",
        ],
    )


@app.command("approve")
def approve_(
    request_id: IdArg,
    expires: Annotated[
        datetime, typer.Option("--expires", formats=["%Y-%m-%d"], help="Last valid day, YYYY-MM-DD.")
    ],
    note: Annotated[str, typer.Option("--note", help="Optional note.")] = "",
    user: UserOpt = None,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Approve a request; the approval that completes the quorum freezes its manifest."""
    req = governance.approve(
        settings_from(config),
        request_id,
        user=require_user(user),
        expires=date.fromordinal(expires.toordinal()),
        note=note,
    )
    _emit_decision(req, as_json)


@app.command("reject")
def reject_(
    request_id: IdArg,
    reason: ReasonOpt,
    user: UserOpt = None,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Reject a pending request."""
    _emit_decision(
        governance.reject(settings_from(config), request_id, user=require_user(user), reason=reason), as_json
    )


@app.command("revoke")
def revoke_(
    request_id: IdArg,
    reason: ReasonOpt,
    purge: Annotated[
        bool,
        typer.Option(
            "--purge",
            help="Also delete what the request already exported (rows, objects; admins only). "
            "Without it, exported data stays and only later runs are refused.",
        ),
    ] = False,
    user: UserOpt = None,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Revoke a request (admins, or one of its approvers); exports of it are refused from now on."""
    from lakehouse.workflows import revoke_request

    revocation = revoke_request(
        settings_from(config), request_id, user=require_user(user), reason=reason, purge=purge
    )
    if revocation.purge is None:
        _emit_decision(revocation.request, as_json)
        return
    req, purged = revocation.request, revocation.purge
    emit(
        revocation.to_dict(),
        as_json,
        [f"{req.id}  {req.status}", f"purged {purged.instances} instances and {purged.objects} objects"],
    )


def _emit_decision(req: governance.Request, as_json: bool) -> None:
    data = {
        "id": req.id,
        "status": req.status,
        "approvers": req.approvers,
        "expires": req.expires,
        "manifest_sha256": req.manifest_sha256,
        "manifest_entries": req.manifest_entries,
    }
    emit(data, as_json, _request_lines(req))
