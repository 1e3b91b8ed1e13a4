"""What reading a cohort from the archive costs, per storage class, before anyone signs.

Prices come from a table kept as data (``schemas/pricing/s3.json``: currency, region, the
date they were read and their source), or from a site's own table of the same shape named
by ``[storage_tiers] price_table``. Per class the estimate adds the reads (a HEAD and a GET per
object, plus the class's per-GB retrieval charge); for archived classes (Glacier Flexible
Retrieval, Deep Archive) the restores at the configured tier (a HEAD and a RestoreObject
per object, the tier's per-GB charge) and the storage of the restored copies for as many
days as the approval is valid; and it says how much Intelligent-Tiering data a read moves
back to the frequent-access tier, which the archive owner then pays for a month or more.

Counts of objects go through the review's small-cell suppression (``suppress``); bytes and
amounts are shown as they are, amounts to a hundredth of a cent (shown to the cent).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import pyarrow as pa

from lakehouse import resources
from lakehouse.config import Settings
from lakehouse.errors import ConfigError
from lakehouse.governance import cohort as cohorts
from lakehouse.governance.optout import opted_out_patient_ids

__all__ = ["ClassCost", "CostReview", "PriceTable", "cohort_cost", "cost_review", "estimate", "restore_days", "sizes_by_class"]

GB = 2**30  # AWS prices per GB of 2^30 bytes
LOCAL = "local"
_REQUIRED = ("currency", "region", "as_of", "source", "requests_per_read", "restored_copy_per_gb_month",
             "days_per_month", "classes")


@dataclass(frozen=True)
class PriceTable:
    """A price table as loaded: where its numbers come from, and the numbers."""

    origin: str  # "packaged" or the site's file
    data: dict[str, Any] = field(repr=False)

    @classmethod
    def load(cls, settings: Settings) -> PriceTable:
        """The site's table named by ``[storage_tiers] price_table`` (relative to the config folder), else
        the packaged one."""
        name = settings.storage_tiers.price_table
        if not name:
            return cls("packaged", resources.read_json("pricing", "s3.json"))
        path = Path(name)
        if not path.is_absolute() and settings.config_path is not None:
            path = settings.config_path.parent / path
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            raise ConfigError(f"[storage_tiers] price_table {name}: cannot be read as JSON") from None
        missing = [key for key in _REQUIRED if key not in data] if isinstance(data, dict) else list(_REQUIRED)
        if missing:
            raise ConfigError(f"[storage_tiers] price_table {name}: missing {', '.join(missing)}")
        return cls(str(path), data)

    def of(self, tier: str) -> dict[str, Any] | None:
        spec: dict[str, Any] | None = self.data["classes"].get(tier)
        return spec


@dataclass(frozen=True)
class ClassCost:
    """One storage class of the cohort: how much sits there and what reading it costs."""

    storage_class: str
    objects: str  # a suppressed cell
    bytes: int
    needs_restore: bool
    read: float  # HEAD + GET requests and per-GB retrieval
    restore: float  # restore requests and per-GB charge at the configured tier (0: readable)
    restored_copies: float  # the restored copies' storage for the restore days


@dataclass(frozen=True)
class CostReview:
    """The cost block of a review (and of ``export restore``'s confirmation)."""

    currency: str
    region: str
    prices_as_of: str
    prices_source: str
    prices_source_urls: list[str]
    price_table: str
    restore_tier: str
    restore_days: int
    classes: list[ClassCost]
    needs_restore: str  # objects, suppressed
    needs_restore_bytes: int
    restore_delay: str  # the configured tier's typical delay for the slowest class in the cohort
    moves_to_frequent: str  # Intelligent-Tiering objects a read moves back to frequent access
    moves_to_frequent_bytes: int
    owner_extra_per_month: float  # what those moves add to the archive owner's storage bill
    read: float
    restore: float
    restored_copies: float
    total: float
    notes: list[str] = field(default_factory=list)  # unpriced classes, tiers a class does not offer
    tier_not_offered: list[str] = field(default_factory=list)  # archived classes without the restore tier

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class _Estimate:
    """Raw figures per class (never printed: its counts are not suppressed)."""

    counts: dict[str, tuple[int, int]]  # class → (objects, bytes)
    costs: dict[str, tuple[float, float, float]]  # class → (read, restore, restored copies)
    delays: dict[str, tuple[float, str]]  # archived class → (typical hours, typical delay) at the tier
    moves: tuple[int, int, float]  # IT objects, bytes, owner's extra per month
    notes: list[str]
    tier_not_offered: list[str]


def restore_days(expires: date | None, today: date, max_validity_days: int) -> int:
    """Days a restored copy must stay readable: through the approval's last valid day, or, for a
    request not approved yet, the longest approval the policy allows."""
    if expires is None:
        return max(1, max_validity_days)
    return max(1, (expires - today).days + 1)


def estimate(prices: PriceTable, sizes: dict[str, list[int]], tier: str, days: int) -> _Estimate:
    """The estimate for objects of the given sizes per storage class (``local`` for files)."""
    data = prices.data
    counts: dict[str, tuple[int, int]] = {}
    costs: dict[str, tuple[float, float, float]] = {}
    delays: dict[str, tuple[float, str]] = {}
    notes: list[str] = []
    not_offered: list[str] = []
    moved = [0, 0, 0.0]
    for name in sorted(sizes):
        objects, size = len(sizes[name]), sum(sizes[name])
        counts[name] = (objects, size)
        spec = prices.of(name)
        if spec is None:
            notes.append(f"storage class {name} has no prices in the table: not in the totals")
            costs[name] = (0.0, 0.0, 0.0)
            continue
        request = float(spec["per_1000_requests"]) / 1000
        read = objects * int(data["requests_per_read"]) * request + size / GB * float(spec["retrieval_per_gb"])
        restore = copies = 0.0
        if spec.get("access") == "restore":
            at_tier = spec.get("restore", {}).get(tier)
            if at_tier is None:
                not_offered.append(name)
                notes.append(f"restore tier {tier} is not offered for {name}; `export restore` refuses it")
            else:
                # A HEAD (at the class's request price) and a RestoreObject per object.
                restore = objects * (request + float(at_tier["per_1000_requests"]) / 1000)
                restore += size / GB * float(at_tier["per_gb"])
                delays[name] = (float(at_tier["typical_hours"]), str(at_tier["typical_delay"]))
            copies = size / GB * float(data["restored_copy_per_gb_month"]) * days / float(data["days_per_month"])
        moves = spec.get("read_moves_to_frequent")
        if moves:
            moved[0] += objects
            moved[1] += size
            moved[2] += size / GB * (float(moves["frequent_per_gb_month"]) - float(moves["infrequent_per_gb_month"]))
        costs[name] = (read, restore, copies)
    return _Estimate(counts, costs, delays, (int(moved[0]), int(moved[1]), float(moved[2])), notes, not_offered)


def cost_review(
    settings: Settings,
    rows: pa.Table,
    *,
    days: int,
    suppress: Callable[[list[int]], list[str]],
) -> CostReview:
    """The cost block for catalog ``rows`` (columns ``storage_class`` and ``size``); object
    counts go through ``suppress`` (the review's complementary small-cell suppression)."""
    prices = PriceTable.load(settings)
    tier = settings.storage_tiers.restore_tier
    sizes = sizes_by_class(rows, on_s3=settings.archive.is_s3)
    found = estimate(prices, sizes, tier, days)
    names = list(found.counts)
    cells = suppress([found.counts[n][0] for n in names])
    archived = [n for n in names if _needs_restore(prices, n)]
    restore_cells = [suppress([sum(found.counts[n][0] for n in archived)])[0], suppress([found.moves[0]])[0]]
    slowest = max((found.delays[n] for n in archived if n in found.delays), default=None)
    classes = [
        ClassCost(
            storage_class=name,
            objects=cells[i],
            bytes=found.counts[name][1],
            needs_restore=name in archived,
            read=_amount(found.costs[name][0]),
            restore=_amount(found.costs[name][1]),
            restored_copies=_amount(found.costs[name][2]),
        )
        for i, name in enumerate(names)
    ]
    read, restore, copies = (sum(c[i] for c in found.costs.values()) for i in range(3))
    return CostReview(
        currency=str(prices.data["currency"]),
        region=str(prices.data["region"]),
        prices_as_of=str(prices.data["as_of"]),
        prices_source=str(prices.data["source"]),
        prices_source_urls=[str(url) for url in prices.data.get("source_urls", [])],
        price_table=prices.origin,
        restore_tier=tier,
        restore_days=days,
        classes=classes,
        needs_restore=restore_cells[0],
        needs_restore_bytes=sum(found.counts[n][1] for n in archived),
        restore_delay=slowest[1] if slowest else "no restore needed",
        moves_to_frequent=restore_cells[1],
        moves_to_frequent_bytes=found.moves[1],
        owner_extra_per_month=_amount(found.moves[2]),
        read=_amount(read),
        restore=_amount(restore),
        restored_copies=_amount(copies),
        total=_amount(read + restore + copies),
        notes=found.notes,
        tier_not_offered=found.tier_not_offered,
    )


def sizes_by_class(rows: pa.Table, *, on_s3: bool) -> dict[str, list[int]]:
    """Object sizes per storage class; a local archive's objects are all ``local``."""
    sizes: dict[str, list[int]] = {}
    if not rows.num_rows:
        return sizes
    classes: Sequence[str | None] = rows.column("storage_class").to_pylist()
    for storage_class, size in zip(classes, rows.column("size").to_pylist(), strict=True):
        name = (storage_class or "STANDARD") if on_s3 else LOCAL
        sizes.setdefault(name, []).append(int(size))
    return sizes


def _needs_restore(prices: PriceTable, name: str) -> bool:
    spec = prices.of(name)
    return bool(spec and spec.get("access") == "restore")


def _amount(amount: float) -> float:
    """An amount as stored (to a hundredth of a cent; shown to the cent)."""
    return round(amount, 4)


def cohort_cost(settings: Settings, cohort: dict[str, Any], *, suppress: Callable[[list[int]], list[str]]) -> CostReview:
    """The cost of the cohort as it resolves now (opted-out patients left out), for a request
    not approved yet: restored copies kept for the longest approval the policy allows."""
    rows = cohorts.select(cohorts.read_catalog(settings), cohorts.parse_cohort(cohort))
    rows, _ = cohorts.exclude_patients(rows, opted_out_patient_ids(settings))
    days = restore_days(None, date.today(), settings.policy.max_validity_days)
    return cost_review(settings, rows, days=days, suppress=suppress)
