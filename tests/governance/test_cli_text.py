"""What people read from the governance commands: purpose and cohort criteria in `request show`,
ISO 8601 times, no Python reprs, identifier criteria only as counts."""

from __future__ import annotations

import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from conftest import Lake, standard_catalog, write_catalog

ENTRY = Path(sys.executable).with_name("lakehouse")
ISO_SECONDS = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"
EXPIRES = (datetime.now(UTC).date() + timedelta(days=30)).isoformat()


def cli(config: Path, *args: str) -> str:
    done = subprocess.run(
        [str(ENTRY), *args, "--config", str(config)], capture_output=True, text=True, check=False, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_request_show_and_optout_list_read_as_text(tmp_path: Path) -> None:
    root = tmp_path / "lh"
    zones = ("archive", "restricted", "research", "datasets")
    for zone in zones:
        (root / zone).mkdir(parents=True)
    lake = Lake(root, "".join(f'[{z}]\nuri = "{z}"\n' for z in zones))
    write_catalog(lake.settings(), standard_catalog())
    cohort = lake.root / "cohort.yaml"
    cohort.write_text("modalities: [CT]\nstudy_date_from: 2024-01-01\npatient_ids: [PAT-1, PAT-2]\n")
    config = lake.root / "lakehouse.toml"
    submitted = cli(
        config, "request", "submit", "--user", "alice", "--project", "lungs", "--title", "CT chest",
        "--purpose", "Train a nodule detector", "--protocol", "IRB-7", "--cohort", str(cohort),
    )
    request_id = submitted.splitlines()[0]
    cli(config, "request", "approve", request_id, "--user", "bob", "--expires", EXPIRES)

    shown = cli(config, "request", "show", request_id, "--user", "bob")
    assert "  purpose: Train a nodule detector" in shown
    assert "    - modality is CT" in shown and "    - study date on or after 2024-01-01" in shown
    assert "    - patient is one of 2 listed (identifiers, not shown)" in shown and "PAT-1" not in shown
    history = [line for line in shown.splitlines() if re.match(r"\s+\d+\. ", line)]
    assert len(history) == 2 and all(re.search(rf"\. {ISO_SECONDS} ", line) for line in history)
    assert not re.search(r"[{}\[\]]|None|datetime\(", shown)

    cli(config, "optout", "add", "--patient-id", "PAT-3", "--reason", "letter", "--user", "root")
    listed = cli(config, "optout", "list", "--user", "root")
    assert re.fullmatch(rf"PAT-3  {ISO_SECONDS}  by root: letter\n", listed)
