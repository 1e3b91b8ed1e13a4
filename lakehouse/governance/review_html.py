"""A request review as one static HTML file: no scripts, no external resources, every value
escaped, so it opens anywhere (mail, a shared drive, a browser without network) and shows
exactly what the text review shows."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from html import escape

from lakehouse.governance.requests import Request
from lakehouse.governance.review import Review

_STYLE = """
body { font: 15px/1.45 system-ui, sans-serif; margin: 2rem auto; max-width: 60rem; color: #1b1f24; }
h1 { font-size: 1.5rem; margin-bottom: .2rem; } h2 { font-size: 1.1rem; margin-top: 1.8rem; border-bottom: 1px solid #ccd; }
.status { display: inline-block; padding: .1rem .5rem; border-radius: .3rem; background: #eef; font-weight: 600; }
table { border-collapse: collapse; margin: .4rem 0; } th, td { text-align: left; padding: .25rem .8rem .25rem 0; vertical-align: top; }
td.n, th.n { text-align: right; font-variant-numeric: tabular-nums; } thead th { border-bottom: 1px solid #99a; }
.note { color: #556; font-size: .9rem; } .warn { color: #8a4b00; }
"""


def render_html(request: Request, review: Review) -> str:
    """The whole page for ``review`` (and the decision history of ``request``)."""
    body = [
        f"<h1>Request review: {_e(review.request_id)}</h1>",
        f'<p><span class="status" id="status">{_e(review.status)}</span> project {_e(review.project)}</p>',
        _pairs(
            [
                ("Title", review.title),
                ("Purpose", review.purpose),
                ("Protocol", review.protocol),
                ("Requester", review.requester),
                ("Options", ", ".join(request.options) or "none"),
                ("Expires", str(request.expires) if request.expires else "not approved yet"),
            ],
            "request",
        ),
        "<h2>Cohort criteria</h2>",
        _list(review.criteria, "criteria"),
        "<h2>What the cohort selects now</h2>",
        (
            f'<p class="note">Catalog version {review.catalog_version}. Counts of 1 to 4 are shown as &lt;5 '
            "(small-cell suppression), and a second cell of a breakdown as &ge;5 when the total would give a "
            "small one away: no review narrows to an individual.</p>"
        ),
        _pairs([(name.capitalize(), n) for name, n in review.totals.items()] + [("Bytes", str(review.bytes))], "totals"),
        *(_breakdown(b.attribute, b.rows) for b in review.breakdowns),
        f"<h3>By site</h3><p>{_e(review.site)}</p>",
        "<h2>Risks and exclusions</h2>",
        _pairs(
            [
                ("Burned-in annotation risk (instances)", review.burned_in_risk),
                ("Opted-out instances excluded", review.opted_out_excluded),
                ("Unparseable objects in this cohort's studies", review.unparseable_in_cohort_studies),
                ("Read with warnings", ", ".join(f"{c} {n}" for c, n in review.read_with_warnings.items()) or "0"),
                ("Quarantined at export for certain (no SOP Instance UID)", review.unexportable),
            ],
            "risks",
        ),
        "<h3>Objects the catalog could not parse</h3>",
        '<p class="note">No criterion can select them, so they are left out of every cohort.</p>',
        _table(["reason", "objects"], [[reason, n] for reason, n in review.unparseable.items()], "unparseable"),
        "<h2>De-identification</h2>",
        f"<p>{_e(review.profile)}</p>",
        _table(
            ["option", "meaning", "keeps"],
            [[o.name, o.meaning, o.keeps] for o in review.options],
            "options",
            numeric=False,
            empty="No options: the profile alone applies.",
        ),
        f"<h2>Overlap with earlier approved requests of project {_e(review.project)}</h2>",
        _table(
            ["request", "status", "title", "instances of this cohort", "patients"],
            [[o.request_id, o.status, o.title, o.instances, o.patients] for o in review.overlaps],
            "overlap",
            numeric=False,
            empty="None.",
        ),
        "<h2>Decision history</h2>",
        _table(
            ["#", "at (UTC)", "action", "by", "expires", "reason"],
            [
                [str(d.seq), d.at.strftime("%Y-%m-%dT%H:%M:%SZ"), d.action, d.user, str(d.expires or ""), d.reason or ""]
                for d in request.decisions
            ],
            "history",
            numeric=False,
        ),
    ]
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>Review {_e(review.request_id)}</title><style>{_STYLE}</style></head>\n<body>\n"
        + "\n".join(body)
        + "\n</body></html>\n"
    )


def _e(value: object) -> str:
    return escape(str(value), quote=True)


def _pairs(rows: Iterable[tuple[str, str]], ident: str) -> str:
    cells = "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in rows)
    return f'<table id="{ident}">{cells}</table>'


def _list(items: Iterable[str], ident: str) -> str:
    return f'<ul id="{ident}">' + "".join(f"<li>{_e(item)}</li>" for item in items) + "</ul>"


def _breakdown(attribute: str, rows: Sequence[tuple[str, str, str]]) -> str:
    ident = "by-" + attribute.replace(" ", "-")
    table = _table([attribute, "studies", "instances"], [list(r) for r in rows], ident, empty="Nothing selected.")
    return f"<h3>By {_e(attribute)}</h3>{table}"


def _table(
    header: Sequence[str], rows: Sequence[Sequence[str]], ident: str, *, numeric: bool = True, empty: str = "None."
) -> str:
    if not rows:
        return f'<p id="{ident}">{_e(empty)}</p>'
    # Columns after the first hold counts (right-aligned) unless the table is text.
    def css(i: int) -> str:
        return ' class="n"' if numeric and i > 0 else ""

    head = "".join(f"<th{css(i)}>{_e(h)}</th>" for i, h in enumerate(header))
    body = "".join("<tr>" + "".join(f"<td{css(i)}>{_e(v)}</td>" for i, v in enumerate(row)) + "</tr>" for row in rows)
    return f'<table id="{ident}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'
