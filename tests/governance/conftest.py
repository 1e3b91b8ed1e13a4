"""Governance fixtures: a lakehouse root with roles (local folders or the moto S3
endpoint for the restricted zone), a synthetic catalog table, and real
concurrent worker processes."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from deltalake import write_deltalake

from lakehouse.config import Settings, load_settings
from lakehouse.lake import table as lake_table

WORKER = Path(__file__).with_name("race_worker.py")
NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
ROLES = """
[roles]
requesters = ["alice", "amir"]
approvers = ["bob", "carol", "dave", "amir"]
operators = ["olga"]
admins = ["root"]
"""


def catalog_row(
    key: str,
    *,
    patient: str,
    study: str,
    series: str,
    modality: str = "CT",
    study_date: date | None = date(2024, 5, 1),
    size: int = 1000,
    **extra: Any,
) -> dict[str, Any]:
    row: dict[str, Any] = {
        "key": key,
        "size": size,
        "etag": f"etag-{key}",
        "sop_class_uid": "1.2.840.10008.5.1.4.1.1.2",
        "sop_instance_uid": "2.25." + str(int(hashlib.sha256(key.encode()).hexdigest()[:24], 16)),
        "study_instance_uid": study,
        "series_instance_uid": series,
        "patient_id": patient,
        "patient_name": f"Name^{patient}",
        "study_date": study_date,
        "accession_number": f"ACC{study[-3:]}",
        "modality": modality,
        "body_part_examined": "CHEST",
        "study_description": "CT Chest",
        "series_description": "Axial",
        "parse_status": "ok",
        "duplicate_sop_instance": False,
        "deleted": False,
        "scanned_at": NOW,
    }
    row.update(extra)
    return row


def standard_catalog() -> list[dict[str, Any]]:
    """3 patients, 4 studies: CT chest (P1, P2), MR brain (P2), US abdomen with burned-in text (P3),
    plus one unparseable object and one deleted object that must never be selected."""
    rows = [
        catalog_row("P1/S1/a.dcm", patient="PAT-1", study="1.2.3.101", series="1.2.3.101.1"),
        catalog_row("P1/S1/b.dcm", patient="PAT-1", study="1.2.3.101", series="1.2.3.101.1"),
        catalog_row(
            "P2/S2/a.dcm",
            patient="PAT-2",
            study="1.2.3.102",
            series="1.2.3.102.1",
            study_date=date(2024, 6, 1),
        ),
        catalog_row(
            "P2/S3/a.dcm",
            patient="PAT-2",
            study="1.2.3.103",
            series="1.2.3.103.1",
            modality="MR",
            study_date=date(2023, 1, 10),
            body_part_examined="BRAIN",
            study_description="MR Brain",
            series_description="T1 SAG",
            size=5000,
        ),
        catalog_row(
            "P3/S4/a.dcm",
            patient="PAT-3",
            study="1.2.3.104",
            series="1.2.3.104.1",
            modality="US",
            body_part_examined="ABDOMEN",
            study_description="US Abdomen",
            series_description="Liver",
            burned_in_annotation="YES",
            size=300,
        ),
        catalog_row(
            "bad/x.dcm",
            patient="PAT-1",
            study="1.2.3.101",
            series="1.2.3.101.1",
            parse_status="error",
            parse_error="not_dicom: no preamble",
        ),
        catalog_row("gone/y.dcm", patient="PAT-1", study="1.2.3.101", series="1.2.3.101.1", deleted=True),
    ]
    return rows


def write_catalog(settings: Settings, rows: list[dict[str, Any]], mode: str = "append") -> None:
    """Stand-in for the catalog sync: write rows into restricted/catalog."""
    loc = lake_table(settings, "catalog")
    if mode == "append":
        loc.merge(loc.spec.to_arrow(rows))
    else:
        write_deltalake(
            loc.uri,
            loc.spec.to_arrow(rows),
            mode="overwrite",
            storage_options=loc.storage_options,
        )


class Lake:
    """One lakehouse root for a test; ``settings(approvals=…)`` rewrites its policy."""

    def __init__(self, root: Path, zones_toml: str) -> None:
        self.root = root
        self.zones_toml = zones_toml
        self.config = root / "lakehouse.toml"

    def settings(
        self,
        approvals: int = 1,
        max_days: int = 365,
        *,
        mode: str = "asserted",
        signing_key: str = "",
        allowed_signers: Sequence[str] = (),
        roles: str = ROLES,
        min_k: int = 1,
    ) -> Settings:
        """Rewrite the config: tests act under typed names (``asserted``) unless they pick a mode,
        with the k-anonymity floor off unless they set one (their cohorts are a few patients)."""
        identity = f"\n[identity]\nmode = {json.dumps(mode)}\nsigning_key = {json.dumps(signing_key)}\n"
        policy = (
            f"\n[policy]\napprovals_required = {approvals}\nmax_validity_days = {max_days}\n"
            f"allowed_signers = {json.dumps(list(allowed_signers))}\nmin_k = {min_k}\n"
        )
        self.config.write_text(self.zones_toml + roles + identity + policy)
        return load_settings(self.config)


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.s3)])
def lake(request: pytest.FixtureRequest, tmp_path: Path) -> Lake:
    """A root whose restricted zone is a local folder or a bucket on the moto S3 server."""
    root = tmp_path / "lh"
    root.mkdir()
    for zone in ("archive", "restricted", "research", "datasets"):
        (root / zone).mkdir()
    zones = "".join(f'[{z}]\nuri = "{z}"\n' for z in ("archive", "research", "datasets"))
    if request.param == "local":
        zones += '[restricted]\nuri = "restricted"\n'
    else:
        server = request.getfixturevalue("s3_server")
        bucket = server.new_bucket("gov")
        zones += (
            f'[restricted]\nuri = "s3://{bucket}/restricted"\n'
            f'[s3]\nendpoint_url = "{server.endpoint_url}"\nregion = "us-east-1"\n'
            'access_key_id = "testing"\nsecret_access_key = "testing"\n'
        )
    return Lake(root, zones)


@pytest.fixture
def settings(lake: Lake) -> Settings:
    s = lake.settings()
    write_catalog(s, standard_catalog())
    return s


def run_race(config: Path, actions: list[dict[str, Any]], tmp_path: Path) -> list[dict[str, Any]]:
    """Start one process per action; all wait for the same go-file, then act at once.
    Returns each worker's JSON result ({"status": …} or {"refused": reason})."""
    go = tmp_path / f"go-{uuid.uuid4().hex}"
    env = {**os.environ, "LAKEHOUSE_NO_PROGRESS": "1"}
    procs = [
        subprocess.Popen(
            [sys.executable, str(WORKER), str(config), str(go), json.dumps(a)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for a in actions
    ]
    ready = [Path(f"{go}.ready.{p.pid}") for p in procs]
    while not all(r.exists() for r in ready):
        if any(p.poll() is not None for p in procs):
            break
        time.sleep(0.05)
    go.touch()
    results = []
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
        results.append(json.loads(out.strip().splitlines()[-1]))
    return results


@pytest.fixture
def race(tmp_path: Path) -> Callable[[Path, list[dict[str, Any]]], list[dict[str, Any]]]:
    return lambda config, actions: run_race(config, actions, tmp_path)
