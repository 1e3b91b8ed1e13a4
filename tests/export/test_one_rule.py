"""One rule each for project names and de-identification options, from submit to export.

Before, governance accepted project names with '.' and options (then retain-safe-private) that
the export then refused (key store, de-identification). Now submit applies the export's own
rules, so such requests are refused at once with the export's one-line reason, and a valid
request goes through submit, approve and export.
"""

from __future__ import annotations

import uuid
from datetime import date, timedelta

import pyarrow as pa
import pytest
from export_testing import PROJECT, read_table
from lakehouse_testing import Prepared

from lakehouse import governance, lake
from lakehouse.config.project import ProjectName
from lakehouse.deid.options import parse_options
from lakehouse.errors import DeidError, InvalidDeidOption, InvalidProjectName, LakehouseError, Refused
from lakehouse.export import export_runs, run_export
from lakehouse.export.keys import load_project_key

EXPIRES = date.today() + timedelta(days=5)
BAD_NAMES = ["lung.ai", "..", "lung ai", "-lead", "x" * 65, "lungs\n", "lüng"]
BAD_OPTIONS = [["retain-everything"], ["retain-full-dates", "retain-modified-dates"], ["keep-names"]]


def submit(prepared: Prepared, project: str = PROJECT, options: list[str] | None = None) -> governance.Request:
    return governance.submit_request(
        prepared.settings, user="alice", project=project, title="t", purpose="p", protocol="IRB-1",
        cohort={"modalities": ["CT"]}, options=options or [],
    )


def export_reason(call: object) -> str:
    """The one-line reason the export's own rule gives (it raises before anything is read)."""
    with pytest.raises(LakehouseError) as err:
        call()  # type: ignore[operator]
    return str(err.value)


@pytest.mark.parametrize("name", BAD_NAMES)
def test_project_names_outside_the_rule_are_refused_at_submit_with_the_key_stores_reason(
    prepared: Prepared, name: str
) -> None:
    before = governance.list_requests(prepared.settings)
    with pytest.raises(Refused) as err:
        submit(prepared, project=name)
    reason = str(err.value)
    assert "\n" not in reason and "letters, digits, '-' or '_'" in reason
    assert reason == export_reason(lambda: load_project_key(prepared.settings, name))
    assert governance.list_requests(prepared.settings) == before


@pytest.mark.parametrize("options", BAD_OPTIONS)
def test_options_the_export_refuses_are_refused_at_submit_with_its_reason(
    prepared: Prepared, options: list[str]
) -> None:
    before = governance.list_requests(prepared.settings)
    with pytest.raises(Refused) as err:
        submit(prepared, options=options)
    assert "\n" not in str(err.value)
    assert str(err.value) == export_reason(lambda: parse_options(options))
    assert governance.list_requests(prepared.settings) == before


def test_a_valid_name_goes_through_submit_approve_and_export(prepared: Prepared) -> None:
    project = "Lung_AI-2"
    request = submit(prepared, project=project, options=["retain-modified-dates", "clean-descriptors"])
    assert request.project == project and isinstance(request.project, str)
    governance.approve(prepared.settings, request.id, user="bob", expires=EXPIRES)
    state = run_export(prepared.settings, request.id, user="olga").state
    assert state.status == "succeeded" and state.exported > 0
    assert read_table(prepared.root, project, "instances").height == state.exported
    assert (prepared.root / "restricted" / "keys" / f"{project}.key").is_file()


def _legacy_request(prepared: Prepared, **changes: object) -> str:
    """A request recorded before submit applied these rules: a copy of a valid submit event
    with ``changes``, approved afterwards."""
    valid = submit(prepared)
    events = lake.table(prepared.settings, "governance_events")
    row = events.read(filters=[("request_id", "=", valid.id)]).to_pylist()[0]
    legacy_id = "req-" + "0" * 11 + "1"
    row.update(request_id=legacy_id, event_id=uuid.uuid4().hex, **changes)
    events.append_serialized(f"request:{legacy_id}", lambda _s: (pa.Table.from_pylist([row]), 1, None))
    # recorded as submit records it: the row counts once its audit event names it
    governance.append_audit(
        prepared.settings, user=row["user"], action="request.submit", request_id=legacy_id,
        subject_event_id=row["event_id"],
    )
    governance.approve(prepared.settings, legacy_id, user="bob", expires=EXPIRES)
    return legacy_id


@pytest.mark.parametrize("changes", [{"project": "lung.ai"}, {"options": ["retain-everything"]}])
def test_an_approved_legacy_request_is_refused_before_the_export_starts_with_the_same_reason(
    prepared: Prepared, changes: dict[str, object]
) -> None:
    request_id = _legacy_request(prepared, **changes)
    runs_before = export_runs(prepared.settings)
    with pytest.raises(Refused) as err:
        run_export(prepared.settings, request_id, user="olga")
    with pytest.raises(Refused) as at_submit:
        submit(prepared, project=str(changes.get("project", PROJECT)), options=changes.get("options"))  # type: ignore[arg-type]
    assert str(err.value).endswith(str(at_submit.value))
    assert export_runs(prepared.settings) == runs_before, "refused before a run is planned"
    assert not (prepared.root / "research" / "lung.ai").exists()


def test_project_name_is_one_type() -> None:
    name = ProjectName("lung-ai")
    assert name == "lung-ai" and isinstance(name, str) and ProjectName(name) == name
    for bad in BAD_NAMES:
        with pytest.raises(InvalidProjectName) as err:
            ProjectName(bad)
        assert isinstance(err.value, ValueError) and "\n" not in str(err.value)
    assert issubclass(InvalidDeidOption, DeidError)


def test_no_key_file_is_made_for_a_refused_name(prepared: Prepared) -> None:
    with pytest.raises(InvalidProjectName):
        load_project_key(prepared.settings, "../escape")
    assert not (prepared.root / "restricted" / "escape.key").exists()
    assert not list(prepared.root.rglob("escape.key"))
