"""Symbolic links in a local archive: not followed by default, followed inside the archive
folder when the setting says so, and a loop never stops a sync. Real links on real folders."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from lakehouse import governance
from lakehouse.catalog import read_catalog, sync_catalog
from lakehouse.config import Settings, load_settings
from lakehouse.errors import ConfigError, PermanentStorageError
from lakehouse.storage import open_archive
from lakehouse.synth import synthesize_archive


def _settings(root: Path, follow: str | None = None) -> Settings:
    env = {} if follow is None else {"LAKEHOUSE_ARCHIVE_FOLLOW_SYMLINKS": follow}
    return load_settings(root / "lakehouse.toml", env=env)


@pytest.fixture
def linked_archive(local_root: Path, tmp_path: Path) -> tuple[Path, str]:
    """An archive with real objects and every kind of link; returns (root, a real object's key)."""
    archive = _settings(local_root).archive.local_path
    keys = synthesize_archive(archive, patients=1, seed=3)
    real_key = next(k for k in keys if k.count("/") == 2)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "elsewhere.dcm").write_bytes((archive / real_key).read_bytes())
    os.symlink(outside / "elsewhere.dcm", archive / "to-outside.dcm")  # a file outside the archive
    os.symlink(outside, archive / "outside-folder")  # a folder outside the archive
    os.symlink(archive, archive / "loop")  # a folder loop back to the archive root
    study = real_key.split("/")[0]
    os.symlink("..", archive / study / "up")  # a loop one level down
    os.symlink("self", archive / "self")  # a link to itself
    os.symlink(archive / "gone.dcm", archive / "broken")  # a dangling link
    os.symlink(archive / real_key, archive / "inside.dcm")  # a file inside the archive
    os.symlink(archive / study, archive / "study-alias")  # a folder inside the archive
    return local_root, real_key


def _statuses(settings: Settings) -> dict[str, tuple[str, str | None]]:
    rows = read_catalog(settings).to_pylist()
    return {r["key"]: (r["parse_status"], (r["parse_error"] or "").split(":")[0] or None) for r in rows}


LINKS = ("to-outside.dcm", "outside-folder", "loop", "self", "broken", "inside.dcm", "study-alias")


def test_links_are_cataloged_as_symlink_and_never_read_by_default(linked_archive: tuple[Path, str]) -> None:
    root, real_key = linked_archive
    settings = _settings(root)
    result = sync_catalog(settings)
    statuses = _statuses(settings)
    up = real_key.split("/")[0] + "/up"
    for key in (*LINKS, up):
        assert statuses[key] == ("symlink", "symlink"), key
    assert result.symlinks == len(LINKS) + 1 and result.failed == 0
    assert "symbolic links not followed" in result.summary_line()
    rows = read_catalog(settings).to_pylist()
    assert not any(r["key"].startswith(("study-alias/", "loop/", "outside-folder/")) for r in rows)
    # The object reached only through the link outside is nowhere in the catalog's bytes read.
    assert all(r["header_bytes_read"] == 0 for r in rows if r["parse_status"] == "symlink")
    archive = open_archive(settings)
    for key in ("inside.dcm", "to-outside.dcm", "study-alias/" + real_key.split("/", 1)[1]):
        with pytest.raises(PermanentStorageError):
            archive.get(key)
    assert archive.get(real_key)  # the object itself is read as usual
    # Links never reach a cohort: the preview counts only the real objects.
    real_objects = sum(1 for status, _ in statuses.values() if status == "ok")
    assert governance.preview(settings, {}).instances == real_objects
    again = sync_catalog(settings)
    assert (again.read, again.symlinks, again.unchanged) == (0, 0, again.listed)


def test_following_inside_reads_links_that_stay_in_the_archive(linked_archive: tuple[Path, str]) -> None:
    root, real_key = linked_archive
    sync_catalog(_settings(root))  # first with the default: the links become rows...
    settings = _settings(root, "inside")
    result = sync_catalog(settings)  # ...and a change of policy re-catalogs them
    statuses = _statuses(settings)
    study, rest = real_key.split("/", 1)
    assert statuses["inside.dcm"] == ("ok", None)
    assert statuses[f"study-alias/{rest}"] == ("ok", None)
    assert statuses["to-outside.dcm"] == ("symlink", "symlink_outside")
    assert statuses["outside-folder"] == ("symlink", "symlink_outside")
    assert statuses["loop"] == ("symlink", "symlink_loop")
    assert statuses[f"{study}/up"] == ("symlink", "symlink_loop")
    assert statuses["study-alias/up"] == ("symlink", "symlink_loop")
    assert statuses["self"] == ("symlink", "symlink_loop")
    assert statuses["broken"] == ("symlink", "symlink_broken")
    assert result.failed == 0 and result.duplicates >= 2  # the same SOP Instance UID under two keys
    archive = open_archive(settings)
    assert archive.get("inside.dcm") == archive.get(real_key)
    with pytest.raises(PermanentStorageError):
        archive.get("to-outside.dcm")


def test_a_folder_loop_deep_in_the_archive_never_stops_a_sync(local_root: Path) -> None:
    archive = _settings(local_root).archive.local_path
    synthesize_archive(archive, patients=1, seed=4)
    deep = archive / "a" / "b" / "c"
    deep.mkdir(parents=True)
    os.symlink(archive / "a", deep / "back-to-a")
    os.symlink(deep / "ping", deep / "pong")
    os.symlink(deep / "pong", deep / "ping")
    for follow in ("never", "inside"):
        settings = _settings(local_root, follow)
        result = sync_catalog(settings)
        assert result.failed == 0
        statuses = _statuses(settings)
        expected = "symlink_loop" if follow == "inside" else "symlink"
        assert {statuses[f"a/b/c/{name}"] for name in ("back-to-a", "ping", "pong")} == {("symlink", expected)}


def test_the_setting_is_checked(local_root: Path) -> None:
    with pytest.raises(ConfigError, match="FOLLOW_SYMLINKS must be one of never, inside"):
        _settings(local_root, "always")
    config = local_root / "lakehouse.toml"
    config.write_text(config.read_text().replace("[restricted]", '[restricted]\nfollow_symlinks = "inside"'))
    with pytest.raises(ConfigError, match="unknown key 'follow_symlinks' in \\[restricted\\]"):
        load_settings(config, env={})
