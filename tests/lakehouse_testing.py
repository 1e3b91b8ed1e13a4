"""Test helpers shared by every test folder (import as ``lakehouse_testing``; never
import from ``conftest``: several conftest modules exist and share that name)."""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
import sys
import threading
import tomllib
import uuid
from dataclasses import dataclass
from pathlib import Path

from lakehouse.config import Settings, load_settings, render_config

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_REQUEST_LINE = re.compile(r'"(?P<method>[A-Z]+) (?P<path>\S+) HTTP/[\d.]+" (?P<status>\d{3})')


class RequestLog(logging.Handler):
    """Every request the S3 server answered: (method, path, status), from its own log."""

    def __init__(self) -> None:
        super().__init__(level=logging.INFO)
        self.entries: list[tuple[str, str, int]] = []
        self._lock_entries = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        # werkzeug colours non-200 lines with ANSI codes: strip them so 206/403/404 count too.
        match = _REQUEST_LINE.search(_ANSI.sub("", record.getMessage()))
        if match:
            with self._lock_entries:
                self.entries.append((match["method"], match["path"], int(match["status"])))

    def clear(self) -> None:
        with self._lock_entries:
            self.entries.clear()

    def for_bucket(self, bucket: str) -> list[tuple[str, str, int]]:
        """Requests whose path-style URL addresses ``bucket``."""
        with self._lock_entries:
            return [e for e in self.entries if e[1] == f"/{bucket}" or e[1].startswith((f"/{bucket}/", f"/{bucket}?"))]

    def methods_for_bucket(self, bucket: str) -> set[str]:
        return {m for m, _, _ in self.for_bucket(bucket)}


@dataclass
class S3Server:
    endpoint_url: str
    log: RequestLog

    def client(self):  # type: ignore[no-untyped-def]
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint_url, region_name="us-east-1")

    def new_bucket(self, prefix: str = "b") -> str:
        name = f"{prefix}-{uuid.uuid4().hex[:12]}"
        self.client().create_bucket(Bucket=name)
        return name


def write_s3_config(root: Path, server: S3Server, buckets: dict[str, str], extra: str = "") -> Path:
    """A lakehouse.toml whose zones are the given buckets (zone name → bucket) on the moto server;
    zones not given stay local folders under ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    lines = []
    for zone in ("archive", "restricted", "research", "datasets"):
        uri = f"s3://{buckets[zone]}/{zone}" if zone in buckets else zone
        lines += [f"[{zone}]", f'uri = "{uri}"', ""]
    lines += ["[s3]", f'endpoint_url = "{server.endpoint_url}"', 'region = "us-east-1"',
              'access_key_id = "testing"', 'secret_access_key = "testing"', ""]
    path = root / "lakehouse.toml"
    path.write_text("\n".join(lines) + extra)
    return path


def reason_lines(stderr: str) -> list[str]:
    """stderr of a command without the warning that identity mode ``asserted`` (the mode of
    test roots) prints on every command: what is left is the command's own output."""
    return [line for line in stderr.splitlines() if "identity mode is 'asserted'" not in line]


def lakehouse_cli(config: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The installed ``lakehouse`` command as a real process, with no ``LAKEHOUSE_*`` variables
    from the caller's environment other than ``env``."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("LAKEHOUSE_")}
    return subprocess.run(
        [str(Path(sys.executable).with_name("lakehouse")), *args, "--config", str(config)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
        env={**clean, "LAKEHOUSE_NO_PROGRESS": "1", **(env or {})},
    )


@dataclass
class Prepared:
    root: Path
    config: Path
    request_id: str

    @property
    def settings(self) -> Settings:
        return load_settings(self.config, env={})

    def copy(self, dest: Path) -> Prepared:
        """An identical root (same catalog, request, manifest and project key) elsewhere."""
        shutil.copytree(self.root, dest)
        return Prepared(dest, dest / "lakehouse.toml", self.request_id)


def set_sections(config: Path, **sections: dict) -> None:
    """Update sections of a config; test roots act under typed names (identity mode
    ``asserted``) unless a test sets ``identity`` itself, and with the k-anonymity floor off
    (``[policy] min_k = 1``: their cohorts are a few synthetic patients) unless the call sets it."""
    data = tomllib.loads(config.read_text())
    data.setdefault("identity", {})["mode"] = "asserted"
    data.setdefault("policy", {})["min_k"] = 1
    for name, values in sections.items():
        data.setdefault(name, {}).update(values)
    config.write_text(render_config(data))
