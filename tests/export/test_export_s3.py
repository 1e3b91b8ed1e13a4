"""The export against a real S3 endpoint: separate archive, restricted and research buckets."""

from __future__ import annotations

import pytest
from export_testing import ROLES, prepare
from lakehouse_testing import S3Server, set_sections, write_s3_config

from lakehouse import governance, lake
from lakehouse.config import load_settings
from lakehouse.errors import Refused
from lakehouse.export import run_export
from lakehouse.synth import generate_archive

pytestmark = pytest.mark.s3


def test_export_on_s3_reads_the_archive_only(s3_server: S3Server, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import polars as pl

    buckets = {zone: s3_server.new_bucket(zone[:4]) for zone in ("archive", "restricted", "research")}
    client = s3_server.client()
    for key, data in generate_archive(patients=1, seed=5):
        client.put_object(Bucket=buckets["archive"], Key=f"archive/{key}", Body=data)
    config = write_s3_config(tmp_path / "lh", s3_server, buckets)
    set_sections(config, roles=ROLES, export={"batch_size": 5, "workers": 2})
    request_id = prepare(config, patients=1)
    settings = load_settings(config, env={})

    pending = governance.submit_request(
        settings, user="alice", project="p2", title="t", purpose="p", protocol="IRB-3", cohort={}, options=[]
    )
    s3_server.log.clear()
    with pytest.raises(Refused):
        run_export(settings, pending.id, user="olga")
    assert s3_server.log.for_bucket(buckets["archive"]) == []

    s3_server.log.clear()
    state = run_export(settings, request_id, user="olga").state
    assert state.status == "succeeded" and state.exported > 0
    assert s3_server.log.methods_for_bucket(buckets["archive"]) <= {"GET", "HEAD"}
    assert s3_server.log.for_bucket(buckets["archive"])

    options = lake.delta_storage_options(settings.research)
    instances = pl.read_delta(f"s3://{buckets['research']}/research/lung-ai/tables/instances", storage_options=options)
    assert instances.height == state.exported
    listed = client.list_objects_v2(Bucket=buckets["research"], Prefix="research/lung-ai/objects/")
    assert listed["KeyCount"] == state.exported
    staged = client.list_objects_v2(Bucket=buckets["research"], Prefix="research/lung-ai/_staging/")
    assert staged["KeyCount"] == 0
