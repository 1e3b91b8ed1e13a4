"""Catalog sync on local folders: rows, incremental behaviour, odd objects, second readers."""

from __future__ import annotations

import io
import os
import shutil
from pathlib import Path

import duckdb
import polars as pl
import pytest
from pydicom import dcmread, dcmwrite
from pydicom.data import get_testdata_file, get_testdata_files

from lakehouse import lake
from lakehouse.catalog import catalog_stats, read_catalog, sync_catalog
from lakehouse.config import Settings, load_settings
from lakehouse.synth import generate_archive, synthesize_archive


def _settings(root: Path, **env: str) -> Settings:
    return load_settings(root / "lakehouse.toml", env={f"LAKEHOUSE_{k.upper()}": v for k, v in env.items()})


def _polars(settings: Settings) -> pl.DataFrame:
    return pl.read_delta(lake.table(settings, "catalog").uri)


def _by_key(settings: Settings) -> dict[str, dict]:
    return {row["key"]: row for row in _polars(settings).to_dicts()}


def test_first_sync_catalogs_every_object_header_only(local_root: Path) -> None:
    settings = _settings(local_root)
    keys = synthesize_archive(settings.archive.local_path, patients=3, seed=5)
    result = sync_catalog(settings)
    assert (result.listed, result.read, result.added, result.failed) == (len(keys), len(keys), len(keys), 0)
    rows = _by_key(settings)
    assert set(rows) == set(keys)
    ct = next(r for r in rows.values() if r["modality"] == "CT")
    on_disk = dcmread(settings.archive.local_path / ct["key"], stop_before_pixels=True)
    assert ct["patient_name"] == str(on_disk.PatientName)
    assert ct["patient_id"] == on_disk.PatientID
    assert ct["accession_number"] == on_disk.AccessionNumber
    assert ct["sop_instance_uid"] == on_disk.SOPInstanceUID
    assert ct["study_instance_uid"] == on_disk.StudyInstanceUID
    assert ct["patient_birth_date"].strftime("%Y%m%d") == on_disk.PatientBirthDate
    assert (ct["rows"], ct["columns"], ct["number_of_frames"]) == (64, 64, 1)
    assert ct["image_type"] == ["ORIGINAL", "PRIMARY", "AXIAL"]
    assert ct["parse_status"] == "ok" and ct["parse_error"] is None and not ct["deleted"]
    us = next(r for r in rows.values() if r["modality"] == "US")
    assert (us["burned_in_annotation"], us["number_of_frames"]) == ("YES", 3)
    cr = next(r for r in rows.values() if r["modality"] == "CR")
    assert cr["transfer_syntax_uid"] == "1.2.840.10008.1.2.5"  # RLE Lossless
    assert {r["modality"] for r in rows.values()} == {"CT", "SR", "KO", "MR", "CR", "OT", "US"}
    # Second reader: DuckDB over the Delta table's Arrow data.
    arrow = lake.table(settings, "catalog").read()  # noqa: F841  (DuckDB finds it by name)
    counts = duckdb.sql(
        "select modality, count(*) n from arrow group by modality order by modality"
    ).fetchall()
    assert dict(counts)["CT"] == 12


def test_large_objects_read_only_the_header_range(local_root: Path) -> None:
    settings = _settings(local_root)
    synthesize_archive(settings.archive.local_path, patients=1, seed=1, ct_size=512, ct_slices=2)
    sync_catalog(settings)
    ct = [r for r in _by_key(settings).values() if r["modality"] == "CT"]
    assert len(ct) == 2
    for row in ct:
        assert row["size"] > 500_000
        assert row["header_bytes_read"] == 65536
        assert row["parse_status"] == "ok" and (row["rows"], row["columns"]) == (512, 512)


def test_second_sync_reads_nothing_then_sees_changes_and_deletions(local_root: Path) -> None:
    settings = _settings(local_root)
    archive = settings.archive.local_path
    keys = synthesize_archive(archive, patients=2, seed=2)
    sync_catalog(settings)
    version = lake.table(settings, "catalog").version()

    again = sync_catalog(settings)
    assert (again.read, again.unchanged, again.bytes_read, again.commits) == (0, len(keys), 0, 0)
    assert lake.table(settings, "catalog").version() == version  # nothing committed

    changed_key, deleted_key = keys[0], keys[1]
    ds = dcmread(archive / changed_key)
    ds.SeriesDescription = "REPROCESSED"
    ds.save_as(archive / changed_key)
    os.utime(archive / changed_key, ns=(1, 1))  # a new mtime → a new local etag
    (archive / deleted_key).unlink()
    _, extra = next(generate_archive(patients=1, seed=99))
    (archive / "new").mkdir()
    (archive / "new" / "extra.dcm").write_bytes(extra)

    third = sync_catalog(settings)
    assert (third.added, third.changed, third.deleted, third.unchanged) == (1, 1, 1, len(keys) - 2)
    assert third.commits == 2  # the read batch, then the tombstones
    rows = _by_key(settings)
    assert rows[changed_key]["series_description"] == "REPROCESSED"
    assert rows[deleted_key]["deleted"] is True
    assert rows["new/extra.dcm"]["parse_status"] == "ok"
    assert deleted_key not in set(read_catalog(settings).column("key").to_pylist())
    assert deleted_key in set(read_catalog(settings, include_deleted=True).column("key").to_pylist())
    assert catalog_stats(settings)["deleted_objects"] == 1


def test_duplicate_sop_instance_uids_are_flagged_not_merged(local_root: Path) -> None:
    settings = _settings(local_root)
    archive = settings.archive.local_path
    keys = synthesize_archive(archive, patients=1, seed=3)
    sync_catalog(settings)
    copy_key = "copies/same-instance.dcm"
    (archive / "copies").mkdir()
    shutil.copy(archive / keys[0], archive / copy_key)

    result = sync_catalog(settings)
    assert result.duplicates == 2
    rows = _by_key(settings)
    assert rows[keys[0]]["duplicate_sop_instance"] and rows[copy_key]["duplicate_sop_instance"]
    assert rows[keys[0]]["sop_instance_uid"] == rows[copy_key]["sop_instance_uid"]
    assert sum(r["duplicate_sop_instance"] for r in rows.values()) == 2

    (archive / copy_key).unlink()
    sync_catalog(settings)
    rows = _by_key(settings)
    assert rows[keys[0]]["duplicate_sop_instance"] is False  # the original is unique again
    assert rows[copy_key]["deleted"] is True


def test_duplicate_flags_follow_changes_across_batches_of_one_sync(local_root: Path) -> None:
    """With one object per commit, the flags still come out as if computed over the whole
    archive: copies read in later batches flag the earlier ones, and a copy rewritten with
    a new SOP Instance UID is unique again while the others stay flagged."""
    settings = _settings(local_root, catalog_batch_size="1")
    archive = settings.archive.local_path
    keys = synthesize_archive(archive, patients=1, seed=4)
    copies = [f"copies/c{i}.dcm" for i in range(3)]
    (archive / "copies").mkdir()
    for key in copies:
        shutil.copy(archive / keys[0], archive / key)
    result = sync_catalog(settings)
    assert result.commits >= len(keys) + len(copies)  # one commit per object read
    assert result.duplicates == 4  # the original and its three copies
    rows = _by_key(settings)
    assert all(rows[k]["duplicate_sop_instance"] for k in [keys[0], *copies])
    assert sum(r["duplicate_sop_instance"] for r in rows.values()) == 4

    ds = dcmread(archive / copies[0])
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = "1.2.826.0.1.3680043.8.498.424242"
    dcmwrite(archive / copies[0], ds, enforce_file_format=True)
    result = sync_catalog(settings)
    rows = _by_key(settings)
    assert (result.changed, result.duplicates) == (1, 3)
    assert rows[copies[0]]["duplicate_sop_instance"] is False
    assert all(rows[k]["duplicate_sop_instance"] for k in [keys[0], *copies[1:]])


def _odd_objects(valid: bytes) -> dict[str, bytes]:
    """Objects a real archive holds: each must get a row, none may stop a sync."""
    ds = dcmread(io.BytesIO(valid))
    raw = io.BytesIO()
    del ds.file_meta
    dcmwrite(raw, ds, implicit_vr=True, little_endian=True)  # no preamble, no file meta
    name_at = valid.index(b"\x10\x00\x10\x00PN")
    absurd = valid[: name_at + 6] + b"\xff\xff" + valid[name_at + 8 :]
    big = ds.copy()
    big.add_new(0x00091010, "OB", bytes(100_000))  # a long header: more than the first 64 KiB
    long_header = io.BytesIO()
    big.file_meta = dcmread(io.BytesIO(valid)).file_meta
    dcmwrite(long_header, big, enforce_file_format=True)
    return {
        "odd/not-dicom.txt": b"this is a text file, not DICOM\n" * 10,
        "odd/empty.dcm": b"",
        "odd/truncated-header.dcm": valid[:1500],
        "odd/truncated-pixels.dcm": valid[: len(valid) - 100],
        "odd/absurd-length.dcm": absurd,
        "odd/no-meta.dcm": raw.getvalue(),
        "odd/big-endian.dcm": Path(get_testdata_file("MR_small_expb.dcm")).read_bytes(),  # type: ignore[arg-type]
        "odd/deflated.dcm": Path(get_testdata_file("image_dfl.dcm")).read_bytes(),  # type: ignore[arg-type]
        "odd/long-header.dcm": long_header.getvalue(),
    }


def test_odd_objects_each_get_a_row_with_a_reason_code(local_root: Path) -> None:
    settings = _settings(local_root)
    archive = settings.archive.local_path
    key, valid = next(generate_archive(patients=1, seed=4))
    for name, data in {key: valid, **_odd_objects(valid)}.items():
        (archive / name).parent.mkdir(parents=True, exist_ok=True)
        (archive / name).write_bytes(data)

    result = sync_catalog(settings)
    rows = _by_key(settings)
    assert len(rows) == 10 and result.read == 10
    status = {k: (r["parse_status"], (r["parse_error"] or "").split(":")[0]) for k, r in rows.items()}
    assert status == {
        key: ("ok", ""),
        "odd/not-dicom.txt": ("error", "not_dicom"),
        "odd/empty.dcm": ("error", "empty_object"),
        "odd/truncated-header.dcm": ("error", "truncated"),
        "odd/truncated-pixels.dcm": ("error", "truncated"),
        "odd/absurd-length.dcm": ("error", "absurd_element_length"),
        "odd/no-meta.dcm": ("warning", "no_file_meta"),
        "odd/big-endian.dcm": ("warning", "big_endian"),
        "odd/deflated.dcm": ("warning", "deflated"),
        "odd/long-header.dcm": ("ok", ""),
    }
    assert result.failed == 5 and result.warnings == 3
    assert result.failure_reasons == {
        "absurd_element_length": 1,
        "empty_object": 1,
        "not_dicom": 1,
        "truncated": 2,
    }
    # Readable odd objects still carry their identifiers.
    assert rows["odd/no-meta.dcm"]["sop_instance_uid"] == rows[key]["sop_instance_uid"]
    assert rows["odd/big-endian.dcm"]["modality"] == "MR"
    assert rows["odd/deflated.dcm"]["sop_instance_uid"]
    assert rows["odd/long-header.dcm"]["header_bytes_read"] > 100_000  # read on past the first 64 KiB
    # Reasons are codes and fixed texts: no header value of any object appears in them.
    ds = dcmread(io.BytesIO(valid))
    for row in rows.values():
        for value in (str(ds.PatientName), ds.PatientID, ds.AccessionNumber):
            assert value not in (row["parse_error"] or "")


def test_header_longer_than_first_range_is_fetched_in_steps(local_root: Path) -> None:
    settings = _settings(local_root, catalog_header_bytes="1024")
    synthesize_archive(settings.archive.local_path, patients=1, seed=6, ct_size=128, ct_slices=1)
    sync_catalog(settings)
    rows = _by_key(settings).values()
    assert all(r["parse_status"] == "ok" for r in rows)
    ct = next(r for r in rows if r["modality"] == "CT")
    assert 1024 < ct["header_bytes_read"] < ct["size"]  # more than one range, still not the pixels


def test_pydicom_and_pydicom_data_files_as_an_archive(local_root: Path) -> None:
    settings = _settings(local_root)
    archive = settings.archive.local_path
    files = [Path(f) for f in get_testdata_files() if os.path.isfile(f)]
    assert len(files) > 200  # pydicom's own files plus the pydicom-data package
    for n, path in enumerate(files):
        target = archive / f"{n:04d}" / path.name
        target.parent.mkdir()
        shutil.copyfile(path, target)

    result = sync_catalog(settings)
    frame = _polars(settings)
    assert frame.height == len(files) == result.listed == result.read
    assert frame.filter(pl.col("parse_status") == "error").height == result.failed
    assert frame.filter(pl.col("parse_status") != "error")["sop_instance_uid"].null_count() < 20
    assert frame.filter(pl.col("parse_status") == "error")["parse_error"].null_count() == 0
    stats = catalog_stats(settings)
    assert sum(stats["per_parse_status"].values()) == len(files)


def test_stats_count_patients_studies_series_instances(local_root: Path) -> None:
    settings = _settings(local_root)
    keys = synthesize_archive(settings.archive.local_path, patients=3, seed=8)
    sync_catalog(settings)
    stats = catalog_stats(settings)
    assert stats["objects"] == stats["instances"] == len(keys)
    assert (stats["patients"], stats["studies"]) == (3, 6)
    assert stats["per_modality"]["CT"] == 12 and stats["per_parse_status"] == {"ok": len(keys)}
    assert stats["bytes"] == sum((settings.archive.local_path / k).stat().st_size for k in keys)


@pytest.mark.parametrize("workers", ["1", "4"])
def test_sync_result_is_the_same_for_any_pool_size(local_root: Path, workers: str) -> None:
    settings = _settings(local_root, catalog_workers=workers, catalog_batch_size="5")
    keys = synthesize_archive(settings.archive.local_path, patients=2, seed=9)
    result = sync_catalog(settings)
    assert result.read == len(keys) and result.commits == -(-len(keys) // 5)
    assert sorted(read_catalog(settings).column("key").to_pylist()) == sorted(keys)


class Killed(Exception):
    pass


def test_a_sync_killed_between_commits_is_completed_by_the_next(local_root: Path) -> None:
    settings = _settings(local_root, catalog_batch_size="5", catalog_workers="1")
    keys = synthesize_archive(settings.archive.local_path, patients=2, seed=10)
    seen = 0

    def kill_in_second_batch(n: int) -> None:
        nonlocal seen
        seen += n
        if seen == 8:
            raise Killed

    with pytest.raises(Killed):
        sync_catalog(settings, progress=kill_in_second_batch)
    after_kill = _polars(settings)
    assert after_kill.height == 5  # the first batch only, whole
    assert after_kill["key"].n_unique() == 5

    rerun = sync_catalog(settings)
    assert (rerun.unchanged, rerun.read) == (5, len(keys) - 5)  # only the uncommitted work is redone
    final = _polars(settings)
    assert final.height == len(keys) and final["key"].n_unique() == len(keys)


def test_an_empty_listing_never_tombstones_the_whole_catalog(local_root: Path) -> None:
    from lakehouse.errors import LakehouseError

    settings = _settings(local_root)
    synthesize_archive(local_root / "archive", patients=1, seed=4)
    first = sync_catalog(settings)
    wrong = _settings(local_root, archive_uri=str(local_root / "no-such-prefix"))
    with pytest.raises(LakehouseError, match="listing is empty"):
        sync_catalog(wrong)
    assert len(read_catalog(settings)) == first.added  # nothing tombstoned
