"""Typed settings.

Precedence, lowest first: embedded ``DEFAULTS`` → ``lakehouse.toml`` → env vars.
Every key ``[section] key`` can be overridden by ``LAKEHOUSE_<SECTION>_<KEY>``
(upper case), e.g. ``LAKEHOUSE_ARCHIVE_URI`` or ``LAKEHOUSE_THROTTLE_REQUESTS_PER_SECOND``.
Env values are parsed as TOML values when they parse (numbers, booleans, lists),
otherwise taken as strings.

Zone URIs are ``s3://bucket/prefix``, ``file:///abs/path`` or a plain path;
relative paths resolve against the config file's folder.
"""

from __future__ import annotations

import copy
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lakehouse.errors import ConfigError

CONFIG_FILENAME = "lakehouse.toml"
CONFIG_ENV = "LAKEHOUSE_CONFIG"
ZONES = ("archive", "restricted", "research", "datasets")

# Settings shared by all S3 zones unless a zone section sets its own.
_S3_KEYS = ("endpoint_url", "region", "access_key_id", "secret_access_key", "profile")

# Per-zone S3 settings default to "" = take the [s3] value.
_ZONE_DEFAULTS = {key: "" for key in _S3_KEYS}

DEFAULTS: dict[str, dict[str, Any]] = {
    "archive": {"uri": "archive", **_ZONE_DEFAULTS},
    "restricted": {"uri": "restricted", **_ZONE_DEFAULTS},
    "research": {"uri": "research", **_ZONE_DEFAULTS},
    "datasets": {"uri": "datasets", **_ZONE_DEFAULTS},
    "s3": {
        "endpoint_url": "",
        "region": "us-east-1",
        "access_key_id": "",
        "secret_access_key": "",
        "profile": "",
        "allow_http": False,
        "conditional_put": "etag",
    },
    "throttle": {
        # Caps on archive traffic, shared by all threads of a process (0 = no cap).
        "requests_per_second": 200.0,
        "bytes_per_second": 200_000_000,
        "max_retries": 5,
        "backoff_base_seconds": 0.2,
        "backoff_max_seconds": 10.0,
        "timeout_seconds": 30.0,
        # Adaptive: a request slower than this, or a transient error, halves the rates;
        # each fast success wins back a little, up to the caps above.
        "adaptive": True,
        "slow_request_seconds": 2.0,
        "min_fraction": 0.05,
    },
    "catalog": {
        "header_bytes": 65536,
        "max_header_bytes": 16 * 1024 * 1024,
        "workers": 8,
        "batch_size": 2000,
    },
    "roles": {
        "requesters": [],
        "approvers": [],
        "operators": [],
        "admins": [],
    },
    "policy": {
        "approvals_required": 1,
        "max_validity_days": 365,
    },
    "deid": {
        # Env var holding a project's key as hex (production); else restricted/keys/<project>.key.
        "key_env": "LAKEHOUSE_DEID_KEY_{project}",
    },
    "export": {
        "engine": "local",
        "workers": 2,
        "batch_size": 500,
        # Delta vacuum retention after purges (hours); 0 removes purged files at once.
        "vacuum_retention_hours": 0,
    },
}


@dataclass(frozen=True)
class ZoneSettings:
    """Where one zone lives and how to reach it."""

    name: str
    uri: str
    endpoint_url: str = ""
    region: str = "us-east-1"
    access_key_id: str = ""
    secret_access_key: str = ""
    profile: str = ""
    allow_http: bool = False
    conditional_put: str = "etag"

    @property
    def is_s3(self) -> bool:
        return self.uri.startswith("s3://")

    @property
    def local_path(self) -> Path:
        if self.is_s3:
            raise ConfigError(f"zone {self.name} is on S3, not a local folder")
        return Path(self.uri.removeprefix("file://"))

    def join(self, *parts: str) -> str:
        """URI of a location inside the zone (for Delta tables and the like)."""
        base = self.uri.rstrip("/")
        rest = "/".join(p.strip("/") for p in parts if p)
        return f"{base}/{rest}" if rest else base

    def storage_options(self) -> dict[str, str]:
        """Options for deltalake / object_store (empty for local zones)."""
        if not self.is_s3:
            return {}
        opts = {"AWS_REGION": self.region, "conditional_put": self.conditional_put}
        if self.endpoint_url:
            opts["AWS_ENDPOINT_URL"] = self.endpoint_url
            if self.endpoint_url.startswith("http://") or self.allow_http:
                opts["AWS_ALLOW_HTTP"] = "true"
        if self.access_key_id:
            opts["AWS_ACCESS_KEY_ID"] = self.access_key_id
            opts["AWS_SECRET_ACCESS_KEY"] = self.secret_access_key
        if self.profile:
            opts["AWS_PROFILE"] = self.profile
        return opts


@dataclass(frozen=True)
class Settings:
    """All settings; ``sections`` keeps every section (also ones later stages add)."""

    sections: Mapping[str, Mapping[str, Any]]
    config_path: Path | None = None
    zones: Mapping[str, ZoneSettings] = field(default_factory=dict)

    def section(self, name: str) -> Mapping[str, Any]:
        return self.sections.get(name, {})

    def zone(self, name: str) -> ZoneSettings:
        try:
            return self.zones[name]
        except KeyError:
            raise ConfigError(f"unknown zone {name!r}; zones are {', '.join(ZONES)}") from None

    @property
    def archive(self) -> ZoneSettings:
        return self.zone("archive")

    @property
    def restricted(self) -> ZoneSettings:
        return self.zone("restricted")

    @property
    def research(self) -> ZoneSettings:
        return self.zone("research")

    @property
    def datasets(self) -> ZoneSettings:
        return self.zone("datasets")


def find_config(explicit: str | os.PathLike[str] | None = None) -> Path | None:
    """The config file to use: explicit path, ``$LAKEHOUSE_CONFIG``, or ./lakehouse.toml."""
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise ConfigError(f"config file not found: {path}")
        return path.resolve()
    env = os.environ.get(CONFIG_ENV)
    if env:
        path = Path(env)
        if not path.is_file():
            raise ConfigError(f"config file from {CONFIG_ENV} not found: {path}")
        return path.resolve()
    here = Path.cwd() / CONFIG_FILENAME
    return here.resolve() if here.is_file() else None


def load_settings(
    path: str | os.PathLike[str] | None = None,
    *,
    env: Mapping[str, str] | None = None,
    require_file: bool = False,
) -> Settings:
    """Load settings: defaults, then the config file (if any), then env overrides."""
    config_path = find_config(path)
    if config_path is None and require_file:
        raise ConfigError(
            f"no {CONFIG_FILENAME} here; run `lakehouse init DIR`, pass --config, or set {CONFIG_ENV}"
        )
    merged = copy.deepcopy(DEFAULTS)
    if config_path is not None:
        try:
            with open(config_path, "rb") as fh:
                data = tomllib.load(fh)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{config_path}: invalid TOML: {exc}") from None
        _merge(merged, data)
    _apply_env(merged, os.environ if env is None else env)
    base = config_path.parent if config_path else Path.cwd()
    zones = {name: _zone(name, merged, base) for name in ZONES}
    return Settings(sections=merged, config_path=config_path, zones=zones)


def _merge(into: dict[str, Any], data: Mapping[str, Any]) -> None:
    for section, values in data.items():
        if isinstance(values, Mapping):
            into.setdefault(section, {}).update(values)
        else:
            raise ConfigError(f"config: top-level key {section!r} must be a [section]")


def _apply_env(merged: dict[str, dict[str, Any]], env: Mapping[str, str]) -> None:
    """Override known settings only: other LAKEHOUSE_* variables (the user, project keys,
    test switches) are not settings and never enter the config."""
    for name, raw in env.items():
        if not name.startswith("LAKEHOUSE_"):
            continue
        rest = name[len("LAKEHOUSE_") :].lower()
        for section, values in merged.items():
            key = rest[len(section) + 1 :] if rest.startswith(section + "_") else None
            if key in values:
                values[key] = _parse_env_value(raw, values[key])
                break


def _parse_env_value(raw: str, default: Any) -> Any:
    if isinstance(default, str):
        return raw
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        if isinstance(default, list):
            return [item.strip() for item in raw.split(",") if item.strip()]
        return raw


def _zone(name: str, merged: Mapping[str, Mapping[str, Any]], base: Path) -> ZoneSettings:
    section = dict(merged.get(name, {}))
    uri = str(section.get("uri", "")).strip()
    if not uri:
        raise ConfigError(f"[{name}] uri is empty")
    if not uri.startswith("s3://"):
        if "://" in uri and not uri.startswith("file://"):
            raise ConfigError(f"[{name}] uri must be s3://bucket/prefix or a local path")
        path = Path(uri.removeprefix("file://")).expanduser()
        uri = str(path if path.is_absolute() else (base / path).resolve())
    s3 = merged.get("s3", {})
    values: dict[str, Any] = {k: section.get(k) or s3.get(k, "") for k in _S3_KEYS}
    return ZoneSettings(
        name=name,
        uri=uri,
        allow_http=bool(section.get("allow_http", s3.get("allow_http", False))),
        conditional_put=str(section.get("conditional_put", s3.get("conditional_put", "etag"))),
        **values,
    )


def render_config(values: Mapping[str, Mapping[str, Any]]) -> str:
    """TOML text for a config file (flat sections of scalars and lists only)."""
    lines: list[str] = []
    for section, items in values.items():
        lines.append(f"[{section}]")
        for key, value in items.items():
            lines.append(f"{key} = {_toml_value(value)}")
        lines.append("")
    return "\n".join(lines)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    text = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{text}"'


def init_root(
    directory: str | os.PathLike[str],
    archive_uri: str | None = None,
    roles: Mapping[str, list[str]] | None = None,
) -> Path:
    """Create DIR with the four zone folders and a ``lakehouse.toml`` of embedded defaults.

    Returns the config path. An existing config is left as it is (init is idempotent).
    """
    root = Path(directory).resolve()
    root.mkdir(parents=True, exist_ok=True)
    config_path = root / CONFIG_FILENAME
    for zone in ZONES:
        if zone == "archive" and archive_uri:
            continue
        (root / zone).mkdir(exist_ok=True)
    if config_path.exists():
        return config_path
    values: dict[str, dict[str, Any]] = {
        "archive": {"uri": archive_uri or "archive"},
        "restricted": {"uri": "restricted"},
        "research": {"uri": "research"},
        "datasets": {"uri": "datasets"},
    }
    for section in ("throttle", "catalog", "roles", "policy", "export"):
        values[section] = dict(DEFAULTS[section])
    values["roles"].update(roles or {})
    header = (
        "# lakehouse settings. Every key can be overridden by LAKEHOUSE_<SECTION>_<KEY>.\n"
        "# Zone URIs: a folder (relative to this file), file:///abs/path or s3://bucket/prefix.\n"
        "# S3 zones take endpoint_url, region, access_key_id, secret_access_key, profile\n"
        "# in their own section or in a shared [s3] section.\n\n"
    )
    config_path.write_text(header + render_config(values))
    return config_path
