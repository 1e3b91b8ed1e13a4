"""OpenLineage events of catalog syncs, exports and dataset builds: START then COMPLETE or FAIL,
sent by the file transport and by the HTTP transport to a local server that records them, each
event valid against the OpenLineage run-event schema (``openlineage_schema``) and lakehouse's
own facet schemas, none carrying an identified value, and none able to fail a job."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from datetime import date, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
from lakehouse_testing import Prepared, set_sections
from openlineage_schema import validate_event

from lakehouse import datasets, governance, lake
from lakehouse.catalog import sync_catalog
from lakehouse.config import Settings, init_root, load_settings
from lakehouse.errors import Refused
from lakehouse.export import run_export

PROJECT = "lung-ai"
ROLES = {
    "requesters": ["alice"], "approvers": ["bob", "carol"], "operators": ["olga"], "admins": ["root"],
    "curators": ["cora"],
}
OPTIONS = ["retain-modified-dates", "clean-descriptors"]


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Prepared:
    """A cataloged synthetic archive (no lineage yet) with an approved request of project lung-ai."""
    from lakehouse.synth import synthesize_archive

    root = tmp_path_factory.mktemp("lineage") / "lh"
    config = init_root(root)
    set_sections(config, roles=ROLES, policy={"approvals_required": 2}, export={"batch_size": 64, "workers": 1})
    synthesize_archive(root / "archive", patients=2, seed=3)
    settings = load_settings(config, env={})
    sync_catalog(settings)
    request = governance.submit_request(
        settings, user="alice", project=PROJECT, title="Nodules", purpose="Detect nodules",
        protocol="IRB-2026-777", cohort={}, options=OPTIONS,
    )
    for approver in ("bob", "carol"):
        governance.approve(settings, request.id, user=approver, expires=date.today() + timedelta(days=30))
    return Prepared(root, config, request.id)


@pytest.fixture
def lh(template: Prepared, tmp_path: Path) -> Prepared:
    return template.copy(tmp_path / "lh")


def file_lineage(lh: Prepared) -> tuple[Settings, Path]:
    set_sections(lh.config, lineage={"transport": "file", "file": "events/ol.jsonl", "namespace": "hospital-lake"})
    return lh.settings, lh.root / "events" / "ol.jsonl"


def read_events(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def identified_values(settings: Settings) -> set[str]:
    """What must never leave the restricted zone: the catalog's source identifiers and names."""
    catalog = lake.table(settings, "catalog").snapshot().read()
    values: set[str] = set()
    for column in ("SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID", "PatientID", "PatientName", "key"):
        if column in catalog.column_names:
            values |= {str(v) for v in catalog.column(column).to_pylist() if v}
    return {v for v in values if len(v) > 3}


def assert_no_identified_value(events: list[dict[str, Any]], settings: Settings) -> None:
    text = json.dumps(events)
    leaked = sorted(v for v in identified_values(settings) if v in text)
    assert not leaked, f"{len(leaked)} identified values in lineage events"
    for name in ("alice", "bob", "carol", "olga", "cora"):
        assert f'"{name}"' not in text  # people are counted, never named


def test_export_emits_start_and_complete_with_request_tables_and_gate(lh: Prepared) -> None:
    settings, path = file_lineage(lh)
    outcome = run_export(settings, lh.request_id, user="olga")
    events = read_events(path)
    for event in events:
        validate_event(event)
    assert [e["eventType"] for e in events] == ["START", "COMPLETE"]
    start, complete = events
    assert start["run"]["runId"] == complete["run"]["runId"]
    assert start["job"] == complete["job"] | {"facets": start["job"]["facets"]}
    assert complete["job"]["namespace"] == "hospital-lake" and complete["job"]["name"] == f"export.{PROJECT}"

    [archive] = complete["inputs"]
    assert (archive["namespace"], archive["name"]) == ("file", str(lh.root / "archive"))
    request = archive["inputFacets"]["lakehouse_request"]
    assert request["requestId"] == lh.request_id and request["protocol"] == "IRB-2026-777"
    assert request["approvers"] == 2
    assert request["deidOptions"] == sorted(OPTIONS) and request["deidProfile"].startswith("DICOM PS3.15")

    state = outcome.state
    outputs = {o["name"].rsplit("/", 1)[1]: o for o in complete["outputs"]}
    assert set(outputs) == {"studies", "series", "instances", "attributes"}
    for name, output in outputs.items():
        snapshot = lake.table(settings, name, project=PROJECT).open()
        assert snapshot is not None
        assert output["facets"]["version"]["datasetVersion"] == str(state.table_versions[name]) == str(snapshot.version)
        assert output["facets"]["dataQualityMetrics"]["rowCount"] == snapshot.read().num_rows > 0
        assert output["outputFacets"]["outputStatistics"]["rowCount"] == snapshot.read().num_rows
        described = {f["name"]: f.get("description") for f in output["facets"]["schema"]["fields"]}
        assert described == {c.name: c.description or None for c in lake.table_spec(name).columns}
    assertions = outputs["instances"]["facets"]["dataQualityAssertions"]["assertions"]
    checked = {(a["assertion"], a.get("column")) for a in assertions}
    assert ("expect_column_values_to_be_unique", "SOPInstanceUID") in checked
    assert all(a["success"] for a in assertions)
    figures = complete["run"]["facets"]["lakehouse_run"]
    assert figures["id"] == state.run_id and figures["counts"]["exported"] == state.exported > 0
    assert_no_identified_value(events, settings)


def test_a_refused_export_ends_in_fail_with_a_phi_free_reason(lh: Prepared) -> None:
    settings, path = file_lineage(lh)
    governance.revoke(settings, lh.request_id, user="bob", reason="consent withdrawn")
    with pytest.raises(Refused):
        run_export(settings, lh.request_id, user="olga")
    events = read_events(path)
    for event in events:
        validate_event(event)
    assert [e["eventType"] for e in events] == ["START", "FAIL"]
    error = events[1]["run"]["facets"]["errorMessage"]
    assert error["message"].startswith("Refused: request") and error["programmingLanguage"] == "python"
    assert events[1]["inputs"][0]["inputFacets"]["lakehouse_request"]["requestId"] == lh.request_id


def test_catalog_sync_and_dataset_build_emit_their_runs(lh: Prepared) -> None:
    settings, path = file_lineage(lh)
    sync_catalog(settings)
    run_export(settings, lh.request_id, user="olga")
    built = datasets.build_dataset(
        settings, datasets.BuildOptions(project=PROJECT, name="ct", selection=datasets.Selection("sql", "TRUE")),
        user="cora",
    )
    events = read_events(path)
    for event in events:
        validate_event(event)
    jobs = [(e["job"]["name"], e["eventType"]) for e in events]
    assert jobs == [
        ("catalog.sync", "START"), ("catalog.sync", "COMPLETE"),
        (f"export.{PROJECT}", "START"), (f"export.{PROJECT}", "COMPLETE"),
        (f"dataset.{PROJECT}.ct", "START"), (f"dataset.{PROJECT}.ct", "COMPLETE"),
    ]
    [catalog] = events[1]["outputs"]
    assert catalog["facets"]["version"]["datasetVersion"] == str(lake.table(settings, "catalog").version())
    build = events[5]
    [folder] = build["outputs"]
    assert folder["name"].endswith(f"{PROJECT}/ct/v1") and folder["facets"]["version"]["datasetVersion"] == "v1"
    assert folder["outputFacets"]["outputStatistics"]["fileCount"] == built.files
    pinned = {i["name"].rsplit("/", 1)[1]: i["facets"]["version"]["datasetVersion"] for i in build["inputs"]}
    assert pinned == {name: str(v) for name, v in built.contents.sources.items()}
    assert_no_identified_value(events, settings)


class Recorder(BaseHTTPRequestHandler):
    """A lineage server: keeps each POSTed body (answers ``status``)."""

    received: ClassVar[list[tuple[str, dict[str, Any]]]] = []
    authorizations: ClassVar[list[str | None]] = []
    status = 201

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).received.append((self.path, json.loads(body)))
        type(self).authorizations.append(self.headers.get("Authorization"))
        self.send_response(type(self).status)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def lineage_server() -> Iterator[tuple[str, type[Recorder]]]:
    handler = type("Handler", (Recorder,), {"received": [], "authorizations": [], "status": 201})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", handler
    finally:
        server.shutdown()
        server.server_close()


def test_http_transport_posts_each_event_to_the_lineage_endpoint(
    lh: Prepared, lineage_server: tuple[str, type[Recorder]], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, recorder = lineage_server
    monkeypatch.setenv("LINEAGE_TOKEN", "t0ken")
    set_sections(lh.config, lineage={"transport": "http", "url": url, "endpoint": "api/v1/lineage",
                                     "api_key_env": "LINEAGE_TOKEN"})
    outcome = run_export(lh.settings, lh.request_id, user="olga")
    assert outcome.state.status == "succeeded"
    assert [path for path, _ in recorder.received] == ["/api/v1/lineage", "/api/v1/lineage"]
    assert recorder.authorizations == ["Bearer t0ken", "Bearer t0ken"]
    events = [event for _, event in recorder.received]
    for event in events:
        validate_event(event)
    assert [e["eventType"] for e in events] == ["START", "COMPLETE"]
    assert_no_identified_value(events, lh.settings)


@pytest.mark.parametrize("broken", ["refusing server", "no server"])
def test_a_broken_transport_never_fails_the_job(
    lh: Prepared, lineage_server: tuple[str, type[Recorder]], broken: str, caplog: pytest.LogCaptureFixture
) -> None:
    url, recorder = lineage_server
    recorder.status = 500
    if broken == "no server":
        url = "http://127.0.0.1:9"  # discard port: nothing listens
    set_sections(lh.config, lineage={"transport": "http", "url": url, "timeout_seconds": 1.0})
    with caplog.at_level(logging.WARNING, logger="lakehouse.lineage"):
        outcome = run_export(lh.settings, lh.request_id, user="olga")
    assert outcome.state.status == "succeeded"
    warnings = [r.getMessage() for r in caplog.records if r.name.startswith("lakehouse.lineage")]
    assert any("could not send the START event" in w for w in warnings)
    assert any("could not send the COMPLETE event" in w for w in warnings)


def test_no_transport_by_default_sends_nothing_and_loads_no_client(lh: Prepared) -> None:
    import subprocess
    import sys

    assert lh.settings.lineage.transport == "none"
    code = (
        "import sys; from lakehouse.export import run_export; from lakehouse.config import load_settings;"
        f"run_export(load_settings({str(lh.config)!r}, env={{}}), {lh.request_id!r}, user='olga');"
        "print(sorted(m for m in sys.modules if m.startswith('openlineage')))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=300)
    assert done.stdout.strip().splitlines()[-1] == "[]"
    assert not (lh.root / "lineage").exists()
