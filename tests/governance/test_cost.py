"""The cost block of a review: the packaged price table, a site's own, and the arithmetic."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pyarrow as pa
import pytest

from lakehouse.config import load_settings
from lakehouse.errors import ConfigError
from lakehouse.governance.cost import GB, PriceTable, cost_review, restore_days
from lakehouse.governance.review import column_cells
from lakehouse.resources import read_json


def _settings(tmp_path: Path, extra: str = ""):  # type: ignore[no-untyped-def]
    config = tmp_path / "lakehouse.toml"
    zones = "".join(f'[{z}]\nuri = "{z}"\n' for z in ("restricted", "research", "datasets"))
    config.write_text('[archive]\nuri = "s3://hospital-archive/dicom"\n' + zones + extra)
    return load_settings(config, env={})


def _rows(*objects: tuple[str | None, int]) -> pa.Table:
    return pa.table({"storage_class": [c for c, _ in objects], "size": [s for _, s in objects]},
                    schema=pa.schema([("storage_class", pa.string()), ("size", pa.int64())]))


def test_the_packaged_table_says_where_its_prices_come_from() -> None:
    table = read_json("pricing", "s3.json")
    assert (table["currency"], table["region"]) == ("USD", "us-east-1")
    assert table["as_of"] and table["source"] and table["source_urls"]
    archived = {name for name, spec in table["classes"].items() if spec["access"] == "restore"}
    assert archived == {"GLACIER", "DEEP_ARCHIVE"}
    assert all("bulk" in table["classes"][name]["restore"] for name in archived)


def test_restore_days_cover_the_approval() -> None:
    today = date(2026, 12, 1)
    assert restore_days(date(2026, 12, 31), today, 365) == 31
    assert restore_days(today, today, 365) == 1  # valid through the end of today
    assert restore_days(None, today, 90) == 90  # not approved yet: the longest approval


def test_deep_archive_at_bulk_from_the_packaged_prices(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    rows = _rows(*[("DEEP_ARCHIVE", GB)] * 1000, *[("STANDARD", GB)] * 10)
    cost = cost_review(settings, rows, days=30, suppress=column_cells)
    deep, standard = cost.classes
    assert (deep.storage_class, deep.objects, deep.bytes, deep.needs_restore) == ("DEEP_ARCHIVE", "1000", 1000 * GB, True)
    assert deep.read == pytest.approx(1000 * 2 * 0.0004 / 1000, abs=1e-4)  # HEAD + GET of each restored copy
    assert deep.restore == pytest.approx(1000 * (0.0004 + 0.025) / 1000 + 1000 * 0.0025, abs=1e-4)
    assert deep.restored_copies == pytest.approx(1000 * 0.023, abs=1e-4)  # a month of copies at Standard
    assert standard.restore == 0 and not standard.needs_restore
    assert cost.needs_restore == "1000" and cost.restore_delay == "within 48 hours"
    assert cost.total == pytest.approx(cost.read + cost.restore + cost.restored_copies, abs=1e-3)
    assert cost.price_table == "packaged" and cost.notes == []


def test_intelligent_tiering_reads_are_priced_for_the_archive_owner(tmp_path: Path) -> None:
    cost = cost_review(_settings(tmp_path), _rows(*[("INTELLIGENT_TIERING", GB)] * 100), days=1, suppress=column_cells)
    assert (cost.moves_to_frequent, cost.moves_to_frequent_bytes) == ("100", 100 * GB)
    assert cost.owner_extra_per_month == pytest.approx(100 * (0.023 - 0.0125), abs=1e-4)
    assert cost.needs_restore == "0" and cost.restore_delay == "no restore needed"


def test_small_counts_are_suppressed_and_unknown_classes_noted(tmp_path: Path) -> None:
    rows = _rows(("GLACIER", 10), *[("STANDARD", 10)] * 7, ("EXPRESS_ONEZONE", 10), (None, 10))
    cost = cost_review(_settings(tmp_path), rows, days=1, suppress=column_cells)
    assert [(c.storage_class, c.objects) for c in cost.classes] == [
        ("EXPRESS_ONEZONE", "<5"), ("GLACIER", "<5"), ("STANDARD", "8"),  # a missing class is STANDARD
    ]
    assert cost.needs_restore == "<5"
    assert cost.notes == ["storage class EXPRESS_ONEZONE has no prices in the table: not in the totals"]


def test_a_tier_a_class_does_not_offer_is_named(tmp_path: Path) -> None:
    settings = _settings(tmp_path, '[storage_tiers]\nrestore_tier = "expedited"\n')
    cost = cost_review(settings, _rows(("DEEP_ARCHIVE", GB), ("GLACIER", GB)), days=1, suppress=column_cells)
    assert cost.tier_not_offered == ["DEEP_ARCHIVE"]
    assert cost.restore_delay == "1-5 minutes"  # Glacier Flexible Retrieval, expedited


def test_a_site_table_is_read_relative_to_the_config_and_checked(tmp_path: Path) -> None:
    table = read_json("pricing", "s3.json") | {"region": "eu-west-1", "as_of": "2026-11-01", "source": "contract"}
    (tmp_path / "prices.json").write_text(json.dumps(table))
    settings = _settings(tmp_path, '[storage_tiers]\nprice_table = "prices.json"\n')
    loaded = PriceTable.load(settings)
    assert loaded.origin == str(tmp_path / "prices.json") and loaded.data["region"] == "eu-west-1"

    (tmp_path / "prices.json").write_text(json.dumps({"currency": "EUR"}))
    with pytest.raises(ConfigError, match="missing region, as_of, source"):
        PriceTable.load(settings)
    (tmp_path / "prices.json").write_text("{not json")
    with pytest.raises(ConfigError, match="cannot be read as JSON"):
        PriceTable.load(settings)
