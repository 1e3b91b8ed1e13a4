"""Loading settings.

Precedence, lowest first: the section defaults (``sections.py``) → ``lakehouse.toml`` → env vars.
Every key ``[section] key`` can be overridden by ``LAKEHOUSE_<SECTION>_<KEY>``
(upper case), e.g. ``LAKEHOUSE_ARCHIVE_URI`` or ``LAKEHOUSE_THROTTLE_REQUESTS_PER_SECOND``,
except governed ones: ``[roles]``, ``[policy]`` and ``[identity] mode`` come from the file
only, and a variable that tries to set one is refused at load (naming it), so a user's own
shell can neither grant a role nor lower a quorum, and nobody mistakes it for working.

The file is checked, not trusted: an unknown section or key is refused with the nearest
valid name, and a value of the wrong type or out of bounds is refused naming its key (or
its env var). Either way the error is one line.

Zone URIs are ``s3://bucket/prefix``, ``file:///abs/path`` or a plain path;
relative paths resolve against the config file's folder.
"""

from __future__ import annotations

import difflib
import os
import tomllib
from collections.abc import Mapping
from dataclasses import Field, asdict, dataclass, field, fields
from functools import cache
from pathlib import Path
from typing import Any, get_type_hints

from lakehouse.config.sections import (
    ZONES,
    ArchiveSettings,
    CatalogSettings,
    DeidKeySettings,
    ExportSettings,
    IdentitySettings,
    LineageSettings,
    PolicySettings,
    RolesSettings,
    S3Settings,
    StorageTiersSettings,
    TablesSettings,
    ThrottleSettings,
    ZoneSettings,
)
from lakehouse.config.values import check_value, parse_env_value
from lakehouse.errors import ConfigError

CONFIG_FILENAME = "lakehouse.toml"
CONFIG_ENV = "LAKEHOUSE_CONFIG"

# Governed sections: taken from the file only (a single key can be marked ``file_only`` too).
FILE_ONLY_SECTIONS: frozenset[str] = frozenset({"roles", "policy"})


@dataclass(frozen=True)
class Settings:
    """All settings, one typed section per ``[section]`` of the file."""

    archive: ArchiveSettings
    restricted: ZoneSettings
    research: ZoneSettings
    datasets: ZoneSettings
    s3: S3Settings = field(default_factory=S3Settings)
    throttle: ThrottleSettings = field(default_factory=ThrottleSettings)
    catalog: CatalogSettings = field(default_factory=CatalogSettings)
    identity: IdentitySettings = field(default_factory=IdentitySettings)
    roles: RolesSettings = field(default_factory=RolesSettings)
    policy: PolicySettings = field(default_factory=PolicySettings)
    deid: DeidKeySettings = field(default_factory=DeidKeySettings)
    export: ExportSettings = field(default_factory=ExportSettings)
    storage_tiers: StorageTiersSettings = field(default_factory=StorageTiersSettings)
    lineage: LineageSettings = field(default_factory=LineageSettings)
    tables: TablesSettings = field(default_factory=TablesSettings)
    config_path: Path | None = field(default=None, metadata={"section": False})

    def zone(self, name: str) -> ZoneSettings:
        if name not in ZONES:
            raise ConfigError(f"unknown zone {name!r}; zones are {', '.join(ZONES)}")
        zone: ZoneSettings = getattr(self, name)
        return zone


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
    given: dict[str, dict[str, Any]] = {name: {} for name in section_classes()}
    if config_path is not None:
        _read_file(config_path, given)
    _read_env(os.environ if env is None else env, given)
    base = config_path.parent if config_path else Path.cwd()
    s3 = S3Settings(**given["s3"])
    values: dict[str, Any] = {
        name: _zone(cls, name, given[name], s3, base) if name in ZONES else cls(**given[name])
        for name, cls in section_classes().items()
    }
    return Settings(**values, config_path=config_path)


@cache
def section_classes() -> dict[str, type]:
    """Each ``[section]`` name and its dataclass, in the order of ``Settings``."""
    hints = get_type_hints(Settings)
    return {f.name: hints[f.name] for f in fields(Settings) if f.metadata.get("section", True)}


@cache
def settable_keys(cls: type) -> dict[str, tuple[Any, Mapping[str, Any]]]:
    """The keys a section accepts in the file: name → (type, bounds)."""
    hints = get_type_hints(cls)
    keys: tuple[Field[Any], ...] = fields(cls)
    return {f.name: (hints[f.name], f.metadata) for f in keys if f.metadata.get("from_file", True)}


def _read_file(path: Path, given: dict[str, dict[str, Any]]) -> None:
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    sections = section_classes()
    for section, values in data.items():
        if not isinstance(values, dict):
            raise ConfigError(f"{path}: key {section!r} must sit in a [section]{_home_hint(section)}")
        if section not in sections:
            raise ConfigError(f"{path}: unknown section [{section}]{_nearest(section, sections, '[{}]')}")
        keys = settable_keys(sections[section])
        for key, value in values.items():
            if key not in keys:
                raise ConfigError(f"{path}: unknown key {key!r} in [{section}]{_nearest(key, keys, '{!r}')}")
            kind, bounds = keys[key]
            given[section][key] = check_value(value, kind, bounds, f"{path}: [{section}] {key}")


def _read_env(env: Mapping[str, str], given: dict[str, dict[str, Any]]) -> None:
    """Override known settings only: other LAKEHOUSE_* variables (the user, project keys,
    test switches) are not settings and never enter the config. A variable naming a governed
    setting is refused, not ignored: silently ignoring it would hide an attempt."""
    for section, cls in section_classes().items():
        for key, (kind, bounds) in settable_keys(cls).items():
            name = f"LAKEHOUSE_{section}_{key}".upper()
            if name not in env:
                continue
            if section in FILE_ONLY_SECTIONS or bounds.get("file_only"):
                raise ConfigError(
                    f"{name} is set, but [{section}] {key} is governed and comes only from the config file; unset it"
                )
            given[section][key] = parse_env_value(env[name], kind, bounds, name)


def _nearest(name: str, valid: Mapping[str, Any], shape: str) -> str:
    close = difflib.get_close_matches(name, list(valid), n=1)
    if close:
        return f"; did you mean {shape.format(close[0])}?"
    return "; valid: " + ", ".join(shape.format(v) for v in valid)


def _home_hint(key: str) -> str:
    homes = [f"[{section}] {key}" for section, cls in section_classes().items() if key in settable_keys(cls)]
    return f"; did you mean {' or '.join(homes)}?" if homes else ""


def _zone(cls: type[ZoneSettings], name: str, given: Mapping[str, Any], s3: S3Settings, base: Path) -> ZoneSettings:
    """A zone: its own keys over the shared [s3] ones ("" = shared), its uri resolved."""
    uri = given.get("uri", name).strip()
    if not uri:
        raise ConfigError(f"[{name}] uri is empty")
    if not uri.startswith("s3://"):
        if "://" in uri and not uri.startswith("file://"):
            raise ConfigError(f"[{name}] uri must be s3://bucket/prefix or a local path")
        path = Path(uri.removeprefix("file://")).expanduser()
        uri = str(path if path.is_absolute() else (base / path).resolve())
    own = {key: value for key, value in given.items() if key != "uri" and value != ""}
    return cls(name=name, uri=uri, **{**asdict(s3), **own})
