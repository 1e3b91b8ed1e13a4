"""The cross-stage actions the CLI and the demo share (lakehouse.workflows), on a real lake."""

from __future__ import annotations

import pytest
from export_testing import PROJECT, objects, read_table
from lakehouse_testing import Prepared

from lakehouse import governance, lake
from lakehouse.errors import Refused
from lakehouse.export import run_export
from lakehouse.workflows import revoke_request, sync_catalog_audited


def test_a_refused_purge_revokes_nothing(prepared: Prepared) -> None:
    settings = prepared.settings
    run_export(settings, prepared.request_id, user="olga")
    exported = read_table(prepared.root, PROJECT, "instances").height
    with pytest.raises(Refused, match="admins"):  # bob approved it and may revoke, but not purge
        revoke_request(settings, prepared.request_id, user="bob", reason="withdrawn", purge=True)
    assert governance.get_request(settings, prepared.request_id).status == "approved"

    revoked = revoke_request(settings, prepared.request_id, user="root", reason="withdrawn", purge=True)
    assert revoked.request.status == "revoked" and revoked.purge is not None
    assert revoked.to_dict()["purge"]["instances"] == exported
    assert read_table(prepared.root, PROJECT, "instances").height == 0 and objects(prepared.root, PROJECT) == {}


def test_revoke_without_purge_keeps_the_exported_data(prepared: Prepared) -> None:
    settings = prepared.settings
    run_export(settings, prepared.request_id, user="olga")
    revoked = revoke_request(settings, prepared.request_id, user="bob", reason="withdrawn")
    assert revoked.purge is None and revoked.to_dict() == {"id": prepared.request_id, "status": "revoked"}
    assert read_table(prepared.root, PROJECT, "instances").height > 0


def test_catalog_sync_is_audited_with_counts(prepared: Prepared) -> None:
    settings = prepared.settings
    before = lake.table(settings, "audit").read().num_rows
    result = sync_catalog_audited(settings, user="olga")
    events = lake.table(settings, "audit").read().sort_by("seq").to_pylist()
    assert len(events) == before + 1
    assert events[-1]["action"] == "catalog.sync" and events[-1]["user"] == "olga"
    assert result.unchanged == result.listed  # nothing new since the fixture's sync
