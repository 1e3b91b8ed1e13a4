"""The restricted zone on local folders: folders 0700 and files 0600 whatever the umask, Delta
tables included, and `lakehouse init` warning about an open restricted folder. The end-to-end
test runs the real CLI in processes started under umask 022."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import pytest

from lakehouse.storage.local import LocalStore, keep_private


def _modes(root: Path) -> dict[str, str]:
    """Every folder and file under ``root`` (itself included) → its permission bits, octal."""
    found = {".": oct(stat.S_IMODE(root.stat().st_mode))}
    for path in root.rglob("*"):
        if not path.is_symlink():
            found[path.relative_to(root).as_posix()] = oct(stat.S_IMODE(path.stat().st_mode))
    return found


def _not_private(root: Path) -> dict[str, str]:
    return {
        name: mode for name, mode in _modes(root).items()
        if mode != ("0o700" if (root / name).is_dir() else "0o600")
    }


@pytest.fixture
def open_umask() -> Iterator[None]:
    """The loosest umask (0): nothing private can come from the umask itself."""
    before = os.umask(0)
    try:
        yield
    finally:
        os.umask(before)


def test_private_store_writes_0700_folders_and_0600_files(tmp_path: Path, open_umask: None) -> None:
    store = LocalStore(tmp_path / "restricted", private=True)
    store.put("exports/run-1/state.json", b"{}")
    assert store.create("keys/p.key", b"secret")
    store.put("exports/run-1/staged/a.parquet", b"rows")
    store.move("exports/run-1/staged/a.parquet", "exports/run-1/done/a.parquet")
    assert _not_private(tmp_path / "restricted") == {}
    plain = LocalStore(tmp_path / "research")  # other zones keep the mode folders get by default
    plain.put("p/objects/x.dcm", b"x")
    assert _modes(tmp_path / "research")["p"] == "0o777"


def test_keep_private_tightens_what_another_writer_left_open(tmp_path: Path, open_umask: None) -> None:
    root = tmp_path / "restricted"
    table = root / "governance" / "events"
    (table / "_delta_log").mkdir(parents=True, mode=0o755)
    (table / "part-0.parquet").write_bytes(b"x")
    (table / "_delta_log" / "00000.json").write_bytes(b"{}")
    os.symlink("/etc/hostname", table / "a-link")  # links are left alone (their target is not ours)
    root.chmod(0o750)
    keep_private(root, table)
    assert _modes(root) == {
        ".": "0o750",  # the zone folder is the operator's: init warns instead
        "governance": "0o700",
        "governance/events": "0o700",
        "governance/events/_delta_log": "0o700",
        "governance/events/_delta_log/00000.json": "0o600",
        "governance/events/part-0.parquet": "0o600",
    }


def _cli(*args: str, cwd: Path, umask: str = "022") -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LAKEHOUSE_")}
    env["LAKEHOUSE_NO_PROGRESS"] = "1"
    command = f"umask {umask} && exec \"$0\" -m lakehouse \"$@\""
    done = subprocess.run(["bash", "-c", command, sys.executable, *args], capture_output=True, text=True,
                          check=False, cwd=cwd, env=env, timeout=600)
    assert done.returncode == 0, f"{args}: {done.stdout[-2000:]}\n{done.stderr[-2000:]}"
    return done


def test_every_restricted_file_is_private_after_sync_request_and_export_under_umask_022(tmp_path: Path) -> None:
    _cli("init", "lh", cwd=tmp_path)
    config = tmp_path / "lh" / "lakehouse.toml"
    text = config.read_text()
    for role, names in (("requesters", "alice"), ("approvers", "bob"), ("operators", "olga")):
        text = text.replace(f"{role} = []", f'{role} = ["{names}"]')
    text = text.replace("min_k = 5", "min_k = 1")  # a few synthetic patients: the k floor off
    config.write_text(text.replace('mode = "os"', 'mode = "asserted"'))  # three typed users
    lh = tmp_path / "lh"
    _cli("synth", "archive", "archive", "--patients", "1", "--seed", "6", cwd=lh)
    _cli("catalog", "sync", cwd=lh)
    (lh / "cohort.yaml").write_text("modalities: [CT]\n")
    submitted = _cli("request", "submit", "--user", "alice", "--project", "lung-ai", "--title", "t", "--purpose",
                     "p", "--protocol", "IRB-1", "--cohort", "cohort.yaml", "--json", cwd=lh)
    request_id = json.loads(submitted.stdout)["id"]
    expires = (date.today() + timedelta(days=30)).isoformat()
    _cli("request", "approve", request_id, "--user", "bob", "--expires", expires, cwd=lh)
    exported = _cli("export", "run", request_id, "--user", "olga", "--workers", "1", "--json", cwd=lh)
    assert json.loads(exported.stdout)["status"] == "succeeded"
    restricted = lh / "restricted"
    names = set(_modes(restricted))
    for made in ("catalog", "governance/events", "governance/audit", "lineage", "quarantine", "exports", "keys"):
        assert any(n == made or n.startswith(made + "/") for n in names), made
    assert _not_private(restricted) == {}


def test_init_creates_restricted_0700_and_warns_about_an_open_one(tmp_path: Path) -> None:
    _cli("init", "fresh", cwd=tmp_path, umask="000")
    assert _modes(tmp_path / "fresh")["restricted"] == "0o700"
    assert "warning" not in _cli("init", "fresh", cwd=tmp_path).stdout

    (tmp_path / "old" / "restricted").mkdir(parents=True)
    (tmp_path / "old" / "restricted").chmod(0o755)
    text = _cli("init", "old", cwd=tmp_path).stdout
    assert "warning: the restricted zone" in text and "mode 755" in text
    data = json.loads(_cli("init", "old", "--json", cwd=tmp_path).stdout)
    assert len(data["warnings"]) == 1 and "chmod 700" in data["warnings"][0]
    assert _modes(tmp_path / "old")["restricted"] == "0o755"  # reported, not changed
