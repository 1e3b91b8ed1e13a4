"""Every zone on a real S3 endpoint: a dataset built into a datasets bucket, read back by a
second reader, pulled to another bucket, withdrawn by a purge."""

from __future__ import annotations

import hashlib

import pytest
from datasets_testing import PROJECT, ROLES, export_request
from lakehouse_testing import S3Server, set_sections, write_s3_config

from lakehouse import datasets, lake
from lakehouse.config import load_settings
from lakehouse.datasets import layout
from lakehouse.synth import generate_archive
from lakehouse.workflows import purge_opted_out_patient

pytestmark = pytest.mark.s3


def test_datasets_zone_on_s3(s3_server: S3Server, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import polars as pl

    buckets = {zone: s3_server.new_bucket(zone[:4]) for zone in ("archive", "restricted", "research", "datasets")}
    client = s3_server.client()
    for key, data in generate_archive(patients=3, seed=8, ct_size=32, ct_slices=4):
        client.put_object(Bucket=buckets["archive"], Key=f"archive/{key}", Body=data)
    config = write_s3_config(tmp_path / "lh", s3_server, buckets)
    set_sections(config, roles=ROLES, export={"batch_size": 64, "workers": 1})
    settings = load_settings(config, env={})
    export_request(settings)

    built = datasets.build_dataset(settings, datasets.BuildOptions(
        project=PROJECT, name="ct", selection=datasets.Selection("sql", "Modality = 'CT'"),
        formats=("dicom", "nifti"), manifests=("monai",)), user="cora")
    prefix = f"datasets/{layout.version_prefix(PROJECT, 'ct', 1)}"
    keys = {o["Key"] for o in client.list_objects_v2(Bucket=buckets["datasets"], Prefix=prefix)["Contents"]}
    listing = client.get_object(Bucket=buckets["datasets"], Key=prefix + layout.CHECKSUMS)["Body"].read().decode()
    for line in listing.splitlines():
        digest, _, path = line.partition("  ")
        data = client.get_object(Bucket=buckets["datasets"], Key=prefix + path)["Body"].read()
        assert hashlib.sha256(data).hexdigest() == digest and prefix + path in keys
    options = lake.delta_storage_options(settings.datasets)
    rows = pl.read_delta(f"s3://{buckets['datasets']}/datasets/{PROJECT}/_tables/dataset_instances",
                         storage_options=options)
    assert rows.height == sum(len(m.instances) for m in built.contents.members)

    out = s3_server.new_bucket("out")
    pulled = datasets.pull(settings, PROJECT, "ct", None, f"s3://{out}/copy", user="leo", fmt="nifti")
    assert pulled.files > 0

    patient = lake.table(settings, "catalog").read(columns=["patient_id"]).column("patient_id")[0].as_py()
    purge = purge_opted_out_patient(settings, patient, user="root")
    assert [v.ref for v in purge.withdrawn] == ["ct@v1"]
    left = client.list_objects_v2(Bucket=buckets["datasets"], Prefix=prefix)
    assert left["KeyCount"] == 0
