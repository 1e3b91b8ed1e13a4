"""How the CLI shows storage tiers: the cost block of a review, of a submit's preview and of
``export restore``'s confirmation, and a run's objects waiting for restores."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from lakehouse.export import RestorePlan, RunState
    from lakehouse.governance.cost import CostReview


def cost_lines(cost: CostReview) -> list[str]:
    """The cost block as text (``request show``, ``request review``, ``export restore``)."""
    table = "the packaged table" if cost.price_table == "packaged" else f"table {cost.price_table}"
    heading = (
        f"  cost of reading the archive (estimate in {cost.currency}; {cost.region} prices as of "
        f"{cost.prices_as_of} from {table}):"
    )
    lines = [heading]
    for c in cost.classes:
        extra = f", restore {c.restore:.2f}, restored copies {c.restored_copies:.2f}" if c.needs_restore else ""
        lines.append(f"    {c.storage_class}: {c.objects} objects, {c.bytes} bytes; read {c.read:.2f}{extra}")
    if not cost.classes:
        lines.append("    nothing selected")
    if cost.needs_restore != "0":
        lines.append(
            f"    need a restore: {cost.needs_restore} objects, {cost.needs_restore_bytes} bytes; tier "
            f"{cost.restore_tier}, typically {cost.restore_delay}; copies kept {cost.restore_days} days"
        )
    else:
        lines.append("    no object needs a restore: every one is readable with a GET")
    if cost.moves_to_frequent != "0":
        lines.append(
            f"    Intelligent-Tiering objects a read moves back to frequent access: {cost.moves_to_frequent} "
            f"({cost.moves_to_frequent_bytes} bytes), up to {cost.owner_extra_per_month:.2f} a month "
            "more for the archive owner"
        )
    lines.append(
        f"    total {cost.total:.2f} (reads {cost.read:.2f}, restores {cost.restore:.2f}, "
        f"restored copies {cost.restored_copies:.2f})"
    )
    lines += [f"    note: {note}" for note in cost.notes]
    return lines


def restore_lines(plan: RestorePlan) -> list[str]:
    """What ``export restore`` asks an operator to agree to."""
    return [
        (
            f"request {plan.request_id}: {plan.objects} objects ({plan.bytes} bytes) in archive tiers need a "
            f"restore; tier {plan.tier}, typically {plan.cost.restore_delay}; copies readable for "
            f"{plan.days} days (through the approval's last day)"
        ),
        *cost_lines(plan.cost),
    ]


def waiting_lines(state: RunState) -> list[str]:
    """A run's objects no GET could read (archived, not restored): what it waits for, or, once
    the run ended otherwise (its request expired or was revoked), what was never read."""
    if not state.waiting:
        return []
    total = sum(state.waiting.values())
    counts = ", ".join(f"{reason} {n}" for reason, n in state.waiting.items())
    where = f"{total} objects ({counts}) in {state.waiting_batches} of {state.batches} batches"
    if state.status == "waiting_for_restore":
        return [
            (f"waiting for restores: {where}; `lakehouse export restore {state.request_id}` requests them, "
            f"`lakehouse export run {state.request_id}` resumes")
        ]
    return [f"never read, still unreadable when the run ended {state.status}: {where}"]
