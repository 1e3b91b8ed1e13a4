"""`lakehouse request` commands: submit, list, show, review, approve, reject, revoke."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from lakehouse import governance
from lakehouse.cli._common import (
    ConfigOpt,
    JsonOpt,
    UserOpt,
    acting,
    emit,
    interactive,
    settings_from,
    show_on_stderr,
    timestamp,
)
from lakehouse.cli._tiers import cost_lines

if TYPE_CHECKING:
    from lakehouse.governance.review import Review

app = typer.Typer(
    help="Export requests: submit a cohort for a stated purpose, then approve, reject or revoke it.\n\n"
    "Identity comes from the identity mode in the config (the OS login by default; --user may only repeat it) "
    "and is checked against the roles in the config; every command is audited.",
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


def _review_lines(review: Review) -> list[str]:
    """What a reviewer reads before signing; every count is already small-cell suppressed."""
    totals = ", ".join(f"{n} {name}" for name, n in review.totals.items())
    lines = [
        f"  purpose: {review.purpose}",
        "  cohort:",
        *(f"    - {words}" for words in review.criteria),
        (
            f"  resolves to (catalog version {review.catalog_version}; counts of 1-4 shown as <5): "
            f"{totals}, {review.bytes} bytes"
        ),
    ]
    for breakdown in review.breakdowns:
        cells = ", ".join(f"{value} {studies} studies/{n} instances" for value, studies, n in breakdown.rows)
        lines.append(f"    by {breakdown.attribute}: {cells or 'nothing'}")
    lines += [
        f"  burned-in risk: {review.burned_in_risk} instances; opted-out instances excluded: {review.opted_out_excluded}",
        f"  de-identification: {review.profile}",
        *(f"    option {o.name} ({o.meaning}) keeps: {o.keeps}" for o in review.options),
    ]
    if not review.options:
        lines.append("    no options: the profile alone applies")
    lines.append(f"  overlap with earlier approved requests of project {review.project}:")
    lines += [
        f"    {o.request_id} ({o.status}, {o.title}): {o.instances} instances of {o.patients} patients of this cohort"
        for o in review.overlaps
    ] or ["    none"]
    broken = ", ".join(f"{reason} {n}" for reason, n in review.unparseable.items())
    lines.append(
        f"  objects the catalog could not parse (no criterion selects them): {broken or 'none'}"
        + (f"; {review.unparseable_in_cohort_studies} of them in this cohort's studies" if broken else "")
    )
    if review.read_with_warnings:
        warned = ", ".join(f"{code} {n}" for code, n in review.read_with_warnings.items())
        lines.append(
            f"  read with warnings: {warned}; quarantined at export for certain: {review.unexportable}"
        )
    if review.cost is not None:
        lines += cost_lines(review.cost)
    if review.risk is not None:
        lines += review.risk.lines()
    return lines


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
    from lakehouse.governance.cohort import load_cohort_file
    from lakehouse.governance.cost import cohort_cost
    from lakehouse.governance.review import column_cells

    settings = settings_from(config)
    req = governance.submit_request(
        settings,
        user=acting(settings, user).name,
        project=project,
        title=title,
        purpose=purpose,
        protocol=protocol,
        cohort=load_cohort_file(cohort),
        options=option or [],
    )
    preview = governance.preview(settings, req.cohort, req.options)
    cost = cohort_cost(settings, req.cohort, suppress=column_cells)
    emit(
        {"id": req.id, "status": req.status, "preview": preview.to_dict(), "cost": cost.to_dict()},
        as_json,
        [req.id, f"preview: {preview.summary_line()}", *cost_lines(cost)],
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
    settings = settings_from(config)
    found = governance.browse_requests(settings, user=acting(settings, user).name, status=status, project=project)
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
    """Show a request, its full decision history and a fresh review: the cohort in words and what it
    resolves to now (identifiers only as counts, counts of 1-4 as <5)."""
    settings = settings_from(config)
    req, review = governance.show_request(settings, request_id, user=acting(settings, user).name)
    emit(
        {**req.to_dict(), "review": review.to_dict()},
        as_json,
        [*_request_lines(req), *_review_lines(review), *_decision_lines(req)],
    )


@app.command()
def review(
    request_id: IdArg,
    html: Annotated[
        Path | None, typer.Option("--html", help="Also write the review as one static HTML file.", dir_okay=False)
    ] = None,
    user: UserOpt = None,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """What a reviewer reads before signing (as `request show`), optionally as one static HTML file."""
    settings = settings_from(config)
    req, found = governance.show_request(
        settings, request_id, user=acting(settings, user).name, action="request.review"
    )
    if html is not None:
        from lakehouse.governance.review_html import render_html

        html.write_text(render_html(req, found), encoding="utf-8")
    data = {**req.to_dict(), "review": found.to_dict()} | ({"html": str(html)} if html else {})
    emit(data, as_json, [*_request_lines(req), *_review_lines(found), *_decision_lines(req)])


@app.command("approve")
def approve_(
    request_id: IdArg,
    expires: Annotated[
        datetime, typer.Option("--expires", formats=["%Y-%m-%d"], help="Last valid day, YYYY-MM-DD.")
    ],
    note: Annotated[str, typer.Option("--note", help="Optional note.")] = "",
    yes: Annotated[
        bool, typer.Option("--yes", "-y", help="Do not ask for confirmation (a terminal asks, after the review).")
    ] = False,
    user: UserOpt = None,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Approve a request; the approval that completes the quorum freezes its manifest.

    On a terminal the review is shown first and the approval asks for confirmation unless --yes;
    without a terminal (scripts) nobody can answer, so it proceeds as with --yes."""
    settings = settings_from(config)
    identity = acting(settings, user)
    if not yes and interactive():
        req, found = governance.show_request(settings, request_id, user=identity.name, action="request.review")
        show_on_stderr([*_request_lines(req), *_review_lines(found), *_decision_lines(req)])
        question = f"Approve {request_id} until {expires.date().isoformat()} as {identity.name}?"
        if not typer.confirm(question, default=False, err=True):
            raise typer.Abort()
    req = governance.approve(
        settings,
        request_id,
        user=identity.name,
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
    settings = settings_from(config)
    identity = acting(settings, user)
    _emit_decision(governance.reject(settings, request_id, user=identity.name, reason=reason), as_json)


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

    settings = settings_from(config)
    identity = acting(settings, user)
    revocation = revoke_request(settings, request_id, user=identity.name, reason=reason, purge=purge)
    if revocation.purge is None:
        _emit_decision(revocation.request, as_json)
        return
    req, purged = revocation.request, revocation.purge
    emit(
        revocation.to_dict(),
        as_json,
        [
            f"{req.id}  {req.status}",
            (f"purged {purged.research.instances} instances and {purged.research.objects} objects; "
            f"withdrew {len(purged.withdrawn)} dataset versions"),
        ],
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
