"""Exports that know the archive's storage tiers, on a real S3 endpoint (moto server over HTTP):
cost per class in the review, restores only by the operator's command, a run that waits for
them and resumes, an approval that expires with objects still unreadable, proven from the
server's own request log.

moto answers like S3 where it matters here: a GET of a GLACIER or DEEP_ARCHIVE object is
refused with ``InvalidObjectState`` (403), a ``RestoreObject`` (``POST …?restore``) is
accepted with 202 and HEAD then shows ``x-amz-restore: ongoing-request="false",
expiry-date=…`` (moto completes restores at once), and a copy onto the same key with another
``StorageClass`` keeps the ETag, as an S3 lifecycle transition does.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from datetime import timedelta
from email.utils import parsedate_to_datetime
from pathlib import Path

import pytest
from export_testing import ROLES, prepare
from lakehouse_testing import S3Server, lakehouse_cli, set_sections, write_s3_config

from lakehouse import governance
from lakehouse.catalog import sync_catalog
from lakehouse.config import Settings, load_settings
from lakehouse.errors import ObjectArchived, Refused
from lakehouse.export import export_status, plan_restore, request_restores, run_export
from lakehouse.governance import requests as governance_requests
from lakehouse.governance.review import build_review, column_cells
from lakehouse.governance.review_html import render_html
from lakehouse.synth import generate_archive

pytestmark = pytest.mark.s3

# The storage class each study of the synthetic archive (17 objects, 2 patients, 4 studies;
# by its place in generated order) moves to after the first catalog sync; the rest stays STANDARD.
STUDY_CLASSES = {1: "INTELLIGENT_TIERING", 2: "DEEP_ARCHIVE", 3: "GLACIER"}
ARCHIVED = ("DEEP_ARCHIVE", "GLACIER")


@dataclass
class TieredArchive:
    config: Path
    bucket: str
    request_id: str
    classes: dict[str, str]  # archive key (without the zone prefix) → storage class
    sizes: dict[str, int]

    @property
    def settings(self) -> Settings:
        return load_settings(self.config, env={})

    def keys_in(self, *classes: str) -> set[str]:
        return {key for key, found in self.classes.items() if found in classes}

    def path(self, key: str) -> str:
        return f"/{self.bucket}/archive/{key}"


@pytest.fixture
def tiered(s3_server: S3Server, tmp_path: Path) -> TieredArchive:
    """An S3 archive cataloged in STANDARD, then moved by "lifecycle" (same ETag) into several
    classes and synced again; restricted and research stay local folders. The request is
    approved for 30 more days."""
    bucket = s3_server.new_bucket("tiers")
    client = s3_server.client()
    objects = list(generate_archive(patients=2, seed=5))
    for key, data in objects:
        client.put_object(Bucket=bucket, Key=f"archive/{key}", Body=data)
    config = write_s3_config(tmp_path / "lh", s3_server, {"archive": bucket})
    set_sections(config, roles=ROLES, export={"batch_size": 4, "workers": 1})
    request_id = prepare(config, patients=2)
    studies = list(dict.fromkeys(key.split("/")[0] for key, _ in objects))  # in generated order
    classes = {key: STUDY_CLASSES.get(studies.index(key.split("/")[0]), "STANDARD") for key, _ in objects}
    # Two objects of the first study to Standard-IA: a readable class with a retrieval charge.
    for key in [key for key, _ in objects if key.startswith(studies[0] + "/")][4:]:
        classes[key] = "STANDARD_IA"
    for key, storage_class in classes.items():
        if storage_class != "STANDARD":
            client.copy_object(
                Bucket=bucket, Key=f"archive/{key}", CopySource={"Bucket": bucket, "Key": f"archive/{key}"},
                StorageClass=storage_class,
            )
    sync = sync_catalog(load_settings(config, env={}))
    assert sync.read == 0 and sync.failed == 0  # a class change is no change of the object: nothing re-read
    return TieredArchive(config, bucket, request_id, classes, {key: len(data) for key, data in objects})


def _archive_log(s3_server: S3Server, archive: TieredArchive) -> list[tuple[str, str, int]]:
    return s3_server.log.for_bucket(archive.bucket)


def test_the_review_counts_and_prices_each_storage_class(tiered: TieredArchive) -> None:
    settings = tiered.settings
    review = build_review(settings, governance.get_request(settings, tiered.request_id))
    cost = review.cost
    assert cost is not None
    by_class = Counter(tiered.classes.values())
    names = sorted(by_class)
    assert [c.storage_class for c in cost.classes] == names
    # Object counts go through the review's small-cell suppression; bytes are exact.
    assert [c.objects for c in cost.classes] == column_cells([by_class[n] for n in names])
    for c in cost.classes:
        assert c.bytes == sum(size for key, size in tiered.sizes.items() if tiered.classes[key] == c.storage_class)
        assert c.needs_restore == (c.storage_class in ARCHIVED)
    assert cost.needs_restore_bytes == sum(tiered.sizes[k] for k in tiered.keys_in(*ARCHIVED))
    assert cost.restore_tier == "bulk" and cost.restore_delay == "within 48 hours"  # Deep Archive, bulk
    assert cost.restore_days == 31  # through the approval's last day, 30 days from today
    assert cost.moves_to_frequent_bytes == sum(tiered.sizes[k] for k in tiered.keys_in("INTELLIGENT_TIERING"))
    assert (cost.region, cost.currency, cost.price_table) == ("us-east-1", "USD", "packaged")
    assert cost.prices_as_of and "https://aws.amazon.com/s3/pricing/" in cost.prices_source_urls
    page = render_html(governance.get_request(settings, tiered.request_id), review)
    assert 'id="cost-by-class"' in page and "<td>DEEP_ARCHIVE</td>" in page and "within 48 hours" in page


def test_a_site_price_table_replaces_the_packaged_one(tiered: TieredArchive) -> None:
    """Prices of 1 per request and 1000 per GB make the arithmetic visible."""
    table = json.loads((Path(__file__).parents[2] / "schemas" / "pricing" / "s3.json").read_text())
    table |= {"region": "eu-central-1", "as_of": "2026-11-30", "source": "our contract"}
    for spec in table["classes"].values():
        spec["per_1000_requests"], spec["retrieval_per_gb"] = 1000.0, 0.0
        for tier in spec.get("restore", {}).values():
            tier["per_1000_requests"], tier["per_gb"] = 1000.0, 0.0
    (tiered.config.parent / "prices.json").write_text(json.dumps(table))
    set_sections(tiered.config, storage_tiers={"price_table": "prices.json", "restore_tier": "standard"})
    settings = tiered.settings
    review = build_review(settings, governance.get_request(settings, tiered.request_id))
    cost = review.cost
    assert cost is not None
    assert (cost.region, cost.prices_as_of, cost.prices_source) == ("eu-central-1", "2026-11-30", "our contract")
    assert cost.price_table == str(tiered.config.parent / "prices.json")
    assert cost.restore_tier == "standard" and cost.restore_delay == "within 12 hours"
    archived = len(tiered.keys_in(*ARCHIVED))
    assert cost.read == 2 * len(tiered.classes)  # a HEAD and a GET per object
    assert cost.restore == 2 * archived  # a HEAD and a RestoreObject per archived object


def test_restores_only_on_the_operators_command_then_the_run_resumes(
    s3_server: S3Server, tiered: TieredArchive
) -> None:
    settings = tiered.settings
    archived = tiered.keys_in(*ARCHIVED)

    # 1. The run reads every readable object, none of the archived ones, and waits.
    s3_server.log.clear()
    first = run_export(settings, tiered.request_id, user="olga").state
    assert first.status == "waiting_for_restore"
    assert first.waiting == {"restore_not_requested": len(archived)}
    assert first.waiting_batches == 2 and first.exported == 0 and first.table_versions == {}
    log = _archive_log(s3_server, tiered)
    assert {m for m, _, _ in log} <= {"GET", "HEAD"}
    gets = {p for m, p, _ in log if m == "GET"}
    assert not gets & {tiered.path(k) for k in archived}  # no GET was even tried on them
    assert {tiered.path(k) for k in set(tiered.classes) - archived} <= gets
    assert export_status(settings, first.run_id).status == "waiting_for_restore"
    assert run_export(settings, tiered.request_id, user="olga").state.status == "waiting_for_restore"

    # 2. The operator asks for the restores: bulk, copies kept through the approval's last day.
    s3_server.log.clear()
    plan = plan_restore(settings, tiered.request_id, user="olga")
    assert _archive_log(s3_server, tiered) == []  # the cost is shown before anything reaches the archive
    assert (plan.objects, plan.tier, plan.days) == (len(archived), "bulk", 31)
    assert plan.bytes == sum(tiered.sizes[k] for k in archived)
    result = request_restores(settings, plan, user="olga")
    assert (result.requested, result.already_restored, result.failed) == (len(archived), 0, {})
    log = _archive_log(s3_server, tiered)
    posts = [p for m, p, _ in log if m == "POST"]
    assert sorted(posts) == sorted(f"{tiered.path(k)}?restore" for k in archived)
    assert {m for m, _, _ in log} == {"HEAD", "POST"}
    expires = governance.get_request(settings, tiered.request_id).expires
    assert expires is not None
    for key in archived:
        restore = s3_server.client().head_object(Bucket=tiered.bucket, Key=f"archive/{key}")["Restore"]
        expiry = parsedate_to_datetime(restore.split('expiry-date="')[1].rstrip('"'))
        assert expiry.date() > expires  # readable through the approval's last day
    again = request_restores(settings, plan_restore(settings, tiered.request_id, user="olga"), user="olga")
    assert (again.requested, again.already_restored) == (0, len(archived))  # nothing asked twice

    # 3. `export run` resumes the same run and exports the restored objects too, reading only.
    s3_server.log.clear()
    done = run_export(settings, tiered.request_id, user="olga").state
    assert {m for m, _, _ in _archive_log(s3_server, tiered)} == {"GET", "HEAD"}
    assert done.run_id == first.run_id and done.status == "succeeded" and done.resumed
    assert done.waiting == {} and done.exported + sum(done.quarantined.values()) == len(tiered.classes)
    actions = [e.action for e in governance.list_audit(settings, request_id=tiered.request_id)]
    assert actions.count("export.waiting_for_restore") == 2 and "export.restore" in actions


def test_a_restored_copy_that_would_go_before_the_approval_ends_is_extended(
    s3_server: S3Server, tiered: TieredArchive
) -> None:
    settings = tiered.settings
    archived = sorted(tiered.keys_in(*ARCHIVED))
    client = s3_server.client()
    short = {"Days": 1, "GlacierJobParameters": {"Tier": "Bulk"}}  # someone's earlier, shorter restore
    client.restore_object(Bucket=tiered.bucket, Key=f"archive/{archived[0]}", RestoreRequest=short)
    result = request_restores(settings, plan_restore(settings, tiered.request_id, user="olga"), user="olga")
    assert (result.requested, result.extended, result.already_restored) == (len(archived) - 1, 1, 0)
    restore = client.head_object(Bucket=tiered.bucket, Key=f"archive/{archived[0]}")["Restore"]
    expires = governance.get_request(settings, tiered.request_id).expires
    assert expires is not None
    assert parsedate_to_datetime(restore.split('expiry-date="')[1].rstrip('"')).date() > expires


def test_a_refused_request_sends_no_restore(s3_server: S3Server, tiered: TieredArchive) -> None:
    settings = tiered.settings
    pending = governance.submit_request(
        settings, user="alice", project="p2", title="t", purpose="p", protocol="IRB-3", cohort={}, options=[]
    )
    s3_server.log.clear()
    with pytest.raises(Refused, match="may not be restored"):
        plan_restore(settings, pending.id, user="olga")
    with pytest.raises(Refused):  # approved, but bob is no operator
        plan_restore(settings, tiered.request_id, user="bob")
    refused = lakehouse_cli(tiered.config, "export", "restore", pending.id, "--yes", "--user", "olga")
    assert refused.returncode != 0 and "may not be restored" in refused.stderr
    assert _archive_log(s3_server, tiered) == []  # no RestoreObject, nor any other request


def test_export_restore_command_shows_the_cost_and_asks_for_yes(s3_server: S3Server, tiered: TieredArchive) -> None:
    archived = tiered.keys_in(*ARCHIVED)
    s3_server.log.clear()
    shown = lakehouse_cli(tiered.config, "export", "restore", tiered.request_id, "--user", "olga")
    assert shown.returncode == 0, shown.stderr
    assert "need a restore; tier bulk, typically within 48 hours" in shown.stdout
    assert "DEEP_ARCHIVE:" in shown.stdout and f"add --yes to request {len(archived)} restores" in shown.stdout
    assert _archive_log(s3_server, tiered) == []  # without --yes (and no terminal) nothing is requested

    done = lakehouse_cli(tiered.config, "export", "restore", tiered.request_id, "--yes", "--json", "--user", "olga")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["requested"] is True and data["result"]["requested"] == len(archived)
    assert data["plan"]["objects"] == len(archived) and "keys" not in data["plan"]
    assert len([m for m, _, _ in _archive_log(s3_server, tiered) if m == "POST"]) == len(archived)
    assert not any(key in done.stdout for key in tiered.classes)  # never a source key


def test_an_approval_that_expires_with_objects_unreadable_reports_them(
    s3_server: S3Server, tiered: TieredArchive, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = tiered.settings
    archived = tiered.keys_in(*ARCHIVED)
    waiting = run_export(settings, tiered.request_id, user="olga").state
    assert waiting.status == "waiting_for_restore"

    # 40 days later: the approval ran out and nobody restored the archived objects.
    clock = governance_requests._utc
    monkeypatch.setattr(governance_requests, "_utc", lambda now: clock(now) + (timedelta(0) if now else timedelta(days=40)))
    s3_server.log.clear()
    with pytest.raises(Refused, match="expired"):
        run_export(settings, tiered.request_id, user="olga")
    with pytest.raises(Refused, match="expired"):
        plan_restore(settings, tiered.request_id, user="olga")
    assert _archive_log(s3_server, tiered) == []
    ended = export_status(settings, waiting.run_id)
    assert ended.status == "expired" and ended.waiting == {"restore_not_requested": len(archived)}
    expired = [e for e in governance.list_audit(settings, request_id=tiered.request_id) if e.action == "export.expired"]
    assert expired and expired[-1].details["unreadable"] == {"restore_not_requested": len(archived)}
    monkeypatch.undo()
    shown = lakehouse_cli(tiered.config, "export", "status", waiting.run_id)
    assert shown.returncode == 0, shown.stderr
    assert f"never read, still unreadable when the run ended expired: {len(archived)} objects" in shown.stdout


def test_an_object_archived_after_the_catalog_saw_it_waits_it_does_not_fail(
    s3_server: S3Server, tiered: TieredArchive
) -> None:
    """The catalog still says STANDARD (no sync since the move): the run's HEAD finds the
    object archived, the batch waits with a counted reason, the run does not fail; a GET of
    such an object is refused by S3 with InvalidObjectState, which storage calls ObjectArchived."""
    from lakehouse.storage import open_archive

    settings = tiered.settings
    standard = min(tiered.keys_in("STANDARD"))
    client = s3_server.client()
    client.copy_object(
        Bucket=tiered.bucket, Key=f"archive/{standard}", CopySource={"Bucket": tiered.bucket, "Key": f"archive/{standard}"},
        StorageClass="GLACIER",
    )
    with pytest.raises(ObjectArchived):
        open_archive(settings).get(standard)
    state = run_export(settings, tiered.request_id, user="olga").state
    assert state.status == "waiting_for_restore" and state.error is None
    assert state.waiting == {"restore_not_requested": len(tiered.keys_in(*ARCHIVED)) + 1}
    assert state.waiting_batches == 3


def test_a_local_archive_is_tier_local_and_costs_nothing(tmp_path: Path) -> None:
    from lakehouse.config import init_root

    config = init_root(tmp_path / "lh")
    set_sections(config, roles=ROLES)
    request_id = prepare(config, synth_into=tmp_path / "lh" / "archive", patients=1)
    settings = load_settings(config, env={})
    cost = build_review(settings, governance.get_request(settings, request_id)).cost
    assert cost is not None
    assert [(c.storage_class, c.needs_restore, c.read, c.restore) for c in cost.classes] == [("local", False, 0.0, 0.0)]
    assert cost.needs_restore == "0" and cost.total == 0.0 and cost.restore_delay == "no restore needed"
    (tmp_path / "cohort.yaml").write_text("")
    submitted = lakehouse_cli(
        config, "request", "submit", "--user", "alice", "--project", "p2", "--title", "t", "--purpose", "p",
        "--protocol", "IRB-9", "--cohort", str(tmp_path / "cohort.yaml"), "--json",
    )
    assert submitted.returncode == 0, submitted.stderr
    preview_cost = json.loads(submitted.stdout)["cost"]
    assert [c["storage_class"] for c in preview_cost["classes"]] == ["local"] and preview_cost["total"] == 0.0
    plan = plan_restore(settings, request_id, user="olga")
    assert plan.objects == 0 and request_restores(settings, plan, user="olga").requested == 0
    assert run_export(settings, request_id, user="olga").state.status == "succeeded"


def test_only_the_restore_handle_can_restore_and_it_can_do_nothing_else(tiered: TieredArchive, tmp_path: Path) -> None:
    """The archive reader still has no method but list, HEAD and GET; the operator's restore
    handle has HEAD and restore only; a local archive has none."""
    from lakehouse.config import init_root
    from lakehouse.storage import open_archive, open_restorer
    from lakehouse.storage.s3 import ArchiveRestorer

    archive = open_archive(tiered.settings)
    assert not any(hasattr(archive, name) for name in ("put", "delete", "move", "restore"))
    restorer = open_restorer(tiered.settings)
    assert isinstance(restorer, ArchiveRestorer)
    assert {name for name in dir(restorer) if not name.startswith("_")} == {"head", "restore"}
    assert open_restorer(load_settings(init_root(tmp_path / "local"), env={})) is None


def test_readability_from_what_a_head_says() -> None:
    from lakehouse.storage import ObjectInfo
    from lakehouse.storage.tiers import readability, restored_until

    def head(storage_class: str | None, restore: str | None = None, archive_status: str | None = None) -> ObjectInfo:
        return ObjectInfo("k", 1, "e", storage_class=storage_class, restore=restore, archive_status=archive_status)

    done = 'ongoing-request="false", expiry-date="Fri, 01 Jan 2027 00:00:00 GMT"'
    assert readability(head(None)) == "readable"  # a local file
    assert readability(head("STANDARD_IA")) == readability(head("INTELLIGENT_TIERING")) == "readable"
    assert readability(head("DEEP_ARCHIVE")) == "restore_not_requested"
    assert readability(head("GLACIER", 'ongoing-request="true"')) == "restore_in_progress"
    assert readability(head("GLACIER", done)) == "readable"
    assert readability(head("INTELLIGENT_TIERING", archive_status="DEEP_ARCHIVE_ACCESS")) == "intelligent_tiering_archive"
    until = restored_until(head("GLACIER", done))
    assert until is not None and until.date().isoformat() == "2027-01-01"
