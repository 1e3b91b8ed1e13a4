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
        *_cost(review),
        *_risk(review),
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


def _risk(review: Review) -> list[str]:
    """The k-anonymity block: what the text review says, as a table."""
    risk = review.risk
    if risk is None:
        return []
    floor = "off (min_k = 1): measured, not enforced" if risk.floor_off else str(risk.min_k)
    rows = [
        ("Floor (min_k)", floor),
        ("Quasi-identifiers kept", ", ".join(risk.quasi_identifiers) or "none"),
        ("k before generalization", str(risk.k_before)),
        ("Patients in classes below the floor", risk.patients_below_before),
        ("Attribute that singles out most", risk.most_at_risk_attribute or "no single one: their combination"),
        ("Generalizations the export applies", ", ".join(risk.generalizations) or "none"),
        ("k after generalization", str(risk.k_after)),
        ("Patients below the floor after", risk.patients_below_after),
    ]
    if risk.refusal:
        rows.append(("The export will be refused", risk.refusal))
    note = (
        '<p class="note">One record per study; a class is a combination of kept values and its size counts '
        "distinct patients; k is the smallest class. Study years are measured before the date shift.</p>"
        if risk.years_unshifted else
        '<p class="note">One record per study; a class is a combination of kept values and its size counts '
        "distinct patients; k is the smallest class.</p>"
    )
    return ["<h2>Re-identification risk</h2>", note, _pairs(rows, "risk")]


def _cost(review: Review) -> list[str]:
    """The cost block: per storage class, then restores, Intelligent-Tiering moves and totals."""
    cost = review.cost
    if cost is None:
        return []
    money = cost.currency
    return [
        "<h2>Cost of reading the archive</h2>",
        (
            f'<p class="note">An estimate in {_e(money)} from {_e(cost.region)} prices as of '
            f"{_e(cost.prices_as_of)} ({_e(cost.prices_source)}; table: {_e(cost.price_table)}, which holds "
            "the addresses).</p>"
        ),
        _table(
            ["storage class", "objects", "bytes", "read", "restore", "restored copies"],
            [
                [c.storage_class, c.objects, str(c.bytes), f"{c.read:.2f}", f"{c.restore:.2f}", f"{c.restored_copies:.2f}"]
                for c in cost.classes
            ],
            "cost-by-class",
            empty="Nothing selected.",
        ),
        _pairs(
            [
                ("Objects that need a restore", f"{cost.needs_restore} ({cost.needs_restore_bytes} bytes)"),
                ("Restore tier and typical delay", f"{cost.restore_tier}, {cost.restore_delay}"),
                ("Restored copies kept (days)", str(cost.restore_days)),
                (
                    "Intelligent-Tiering objects a read moves back to frequent access",
                    (f"{cost.moves_to_frequent} ({cost.moves_to_frequent_bytes} bytes), up to "
                    f"{cost.owner_extra_per_month:.2f} {money} a month more for the archive owner"),
                ),
                ("Total", f"{cost.total:.2f} {money}"),
                *(("Note", note) for note in cost.notes),
            ],
            "cost",
        ),
    ]


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
