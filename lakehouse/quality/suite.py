"""The research gate's suite, kept as data in ``schemas/quality/research.json``."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, timedelta
from functools import cache
from importlib.resources.abc import Traversable

from lakehouse import resources

SUITE_PATH = resources.schema_file("quality", "research.json")


@dataclass(frozen=True)
class TableRules:
    keys: tuple[str, ...]
    uid_columns: tuple[str, ...]
    references: dict[str, str]  # column → table whose key it must be
    row_count: str | None  # name of the run figure the row count must equal
    free_text: tuple[str, ...]


@dataclass(frozen=True)
class Suite:
    name: str
    version: int
    uid_pattern: str
    date_min: date
    max_days_after_today: int
    tables: dict[str, TableRules]

    def date_max(self, today: date | None = None) -> date:
        return (today or date.today()) + timedelta(days=self.max_days_after_today)


@cache
def load_suite(path: Traversable = SUITE_PATH) -> Suite:
    data = json.loads(path.read_text())
    return Suite(
        name=data["name"],
        version=int(data["version"]),
        uid_pattern=data["uid_pattern"],
        date_min=date.fromisoformat(data["date_range"]["min"]),
        max_days_after_today=int(data["date_range"]["max_days_after_today"]),
        tables={
            name: TableRules(
                keys=tuple(rules["keys"]),
                uid_columns=tuple(rules.get("uid_columns", ())),
                references=dict(rules.get("references", {})),
                row_count=rules.get("row_count"),
                free_text=tuple(rules.get("free_text", ())),
            )
            for name, rules in data["tables"].items()
        },
    )
