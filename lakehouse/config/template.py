"""The ``lakehouse.toml`` that ``lakehouse init`` writes, rendered from the section defaults."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from lakehouse.config.sections import ZONES
from lakehouse.config.settings import CONFIG_FILENAME, load_settings, section_classes

# [s3] stays out of a new file: only S3 sites need it, and it is where credentials would go.
_NOT_WRITTEN = ("s3",)

_HEADER = (
    "# lakehouse settings. Every key can be overridden by LAKEHOUSE_<SECTION>_<KEY>, except the\n"
    "# governed ones: [roles], [policy] and [identity] mode come from this file only.\n"
    "# Zone URIs: a folder (relative to this file), file:///abs/path or s3://bucket/prefix.\n"
    "# S3 zones take endpoint_url, region, access_key_id, secret_access_key, profile\n"
    "# in their own section or in a shared [s3] section.\n\n"
)


def default_values(archive_uri: str | None = None) -> dict[str, dict[str, Any]]:
    """Every section a new config file holds, with its defaults (zones: their uri only)."""
    values: dict[str, dict[str, Any]] = {zone: {"uri": zone} for zone in ZONES}
    if archive_uri:
        values["archive"]["uri"] = archive_uri
    for name, cls in section_classes().items():
        if name not in ZONES and name not in _NOT_WRITTEN:
            values[name] = asdict(cls())
    return values


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
    if isinstance(value, Sequence) and not isinstance(value, str):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    text = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{text}"'


def init_root(
    directory: str | os.PathLike[str],
    archive_uri: str | None = None,
    roles: Mapping[str, Sequence[str]] | None = None,
    identity_mode: str | None = None,
    min_k: int | None = None,
) -> Path:
    """Create DIR with the four zone folders and a ``lakehouse.toml`` of the defaults.

    Returns the config path. An existing config is left as it is (init is idempotent).
    ``identity_mode`` other than the default ``os`` is for demo roots (``asserted``), and so is
    a ``min_k`` below the default (a handful of synthetic patients cannot be 5-anonymous).
    The restricted folder is created 0700 whatever the umask (it holds identified data);
    an existing one keeps its mode (``exposed_restricted_folder`` tells when to warn).
    """
    root = Path(directory).resolve()
    root.mkdir(parents=True, exist_ok=True)
    config_path = root / CONFIG_FILENAME
    for zone in ZONES:
        if zone == "archive" and archive_uri:
            continue
        if zone == "restricted":
            _private_folder(root / zone)
        else:
            (root / zone).mkdir(exist_ok=True)
    if config_path.exists():
        return config_path
    values = default_values(archive_uri)
    values["roles"].update(roles or {})
    if identity_mode:
        values["identity"]["mode"] = identity_mode
    if min_k is not None:
        values["policy"]["min_k"] = min_k
    config_path.write_text(_HEADER + render_config(values))
    return config_path


def exposed_restricted_folder(config_path: str | os.PathLike[str]) -> str | None:
    """A warning when the config's restricted zone is a local folder that group or others
    may read or enter, else None. The mode is reported, never changed: it is the operator's."""
    settings = load_settings(config_path)
    zone = settings.restricted
    if zone.is_s3:
        return None
    try:
        mode = zone.local_path.stat().st_mode & 0o777
    except FileNotFoundError:
        return None
    if not mode & 0o077:
        return None
    return (
        f"the restricted zone {zone.local_path} is open to group or others (mode {mode:o}); "
        f"it holds identified data: chmod 700 it"
    )


def _private_folder(path: Path) -> None:
    """Create ``path`` 0700 (mkdir's mode is masked by the umask, so chmod it too)."""
    try:
        path.mkdir(mode=0o700)
    except FileExistsError:
        return
    path.chmod(0o700)
