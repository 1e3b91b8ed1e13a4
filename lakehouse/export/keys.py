"""Where a project's de-identification key comes from; de-identification only receives it.

Keys never live in the research or datasets zones and never reach a log. Lookup order:

1. the environment variable named by ``[deid] key_env`` (default ``LAKEHOUSE_DEID_KEY_{project}``,
   project upper-cased, ``-`` → ``_``): the production path, a secret reference the platform
   fills; the value is the key as hex (at least 32 bytes);
2. the key file ``keys/<project>.key`` in the restricted zone, created on first use with 32
   random bytes: a local file appears complete with mode 0600; on S3 a conditional create
   makes two racing first users end up with the same (winning) key.

``lakehouse deid`` on loose files (``command_key``) may instead take the key from
``--key-file`` or the ``LAKEHOUSE_DEID_KEY`` variable when no config is given.

Workers (local processes, Spark executors) look the key up themselves the same way: a batch
task carries only a one-way check of it (``key_check``), so a worker holding another key
fails its batch instead of writing other pseudonyms. Tasks carry no zone credentials either
(``without_credentials``): a local pool hands its processes the driver's at start, and Spark
executors take theirs from their own environment (``environment_credentials``), else from
boto3's default chain (``AWS_*`` variables, a profile, an instance role).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import TypeVar

from lakehouse.config import ZONES, S3Settings, Settings
from lakehouse.config.project import ProjectName
from lakehouse.deid.keys import MIN_KEY_BYTES, parse_key
from lakehouse.errors import ConfigError
from lakehouse.storage import open_zone

__all__ = [
    "COMMAND_KEY_ENV",
    "Credentials",
    "command_key",
    "environment_credentials",
    "key_check",
    "load_project_key",
    "settings_credentials",
    "with_credentials",
    "without_credentials",
]

#: Zone (or ``s3``, shared) → (access key id, secret access key).
Credentials = Mapping[str, tuple[str, str]]
_Section = TypeVar("_Section", bound=S3Settings)

#: The key of ``lakehouse deid`` when neither a config nor ``--key-file`` is given.
COMMAND_KEY_ENV = "LAKEHOUSE_DEID_KEY"


def load_project_key(settings: Settings, project: str, environ: Mapping[str, str] | None = None) -> bytes:
    """The project's secret: from the configured env var, else the restricted zone's key file."""
    name = ProjectName(project)
    env = os.environ if environ is None else environ
    env_name = settings.deid.key_env.format(project=name.upper().replace("-", "_"))
    if env.get(env_name):
        return parse_key(env[env_name], f"env var {env_name}")
    return _key_file(settings, name)


def command_key(
    settings: Settings | None, project: str, key_file: Path | None, environ: Mapping[str, str] | None = None
) -> bytes:
    """The key of ``lakehouse deid``: the project's key when a config is given, else the
    ``--key-file``, else ``LAKEHOUSE_DEID_KEY``; raises ConfigError naming the three sources."""
    name = ProjectName(project)
    env = os.environ if environ is None else environ
    if settings is not None:
        return load_project_key(settings, name, env)
    if key_file is not None:
        return parse_key(key_file.read_text(), "--key-file")
    if env.get(COMMAND_KEY_ENV):
        return parse_key(env[COMMAND_KEY_ENV], COMMAND_KEY_ENV)
    raise ConfigError(
        f"no key: pass --config (project key in the restricted zone), --key-file, or set {COMMAND_KEY_ENV}"
    )


def key_check(key: bytes) -> str:
    """A one-way check of a key (HMAC of a fixed label): equal checks, equal keys; the key
    cannot be recovered from it."""
    return hmac.new(key, b"lakehouse key check", hashlib.sha256).hexdigest()[:32]


def settings_credentials(settings: Settings) -> dict[str, tuple[str, str]]:
    """The access keys the settings hold, by zone (``s3`` for the shared section)."""
    sections = {"s3": settings.s3, **{zone: settings.zone(zone) for zone in ZONES}}
    return {
        name: (section.access_key_id, section.secret_access_key)
        for name, section in sections.items()
        if section.access_key_id or section.secret_access_key
    }


def environment_credentials(environ: Mapping[str, str] | None = None) -> dict[str, tuple[str, str]]:
    """Access keys from the settings' own variables (``LAKEHOUSE_S3_ACCESS_KEY_ID`` and
    ``LAKEHOUSE_S3_SECRET_ACCESS_KEY``, or ``LAKEHOUSE_<ZONE>_…`` for one zone) of this process."""
    env = os.environ if environ is None else environ
    found = {}
    for name in ("s3", *ZONES):
        key_id = env.get(f"LAKEHOUSE_{name.upper()}_ACCESS_KEY_ID", "")
        secret = env.get(f"LAKEHOUSE_{name.upper()}_SECRET_ACCESS_KEY", "")
        if key_id or secret:
            found[name] = (key_id, secret)
    return found


def without_credentials(settings: Settings) -> Settings:
    """The settings with every access key blanked: what may travel to a worker."""
    return with_credentials(settings, {}, keep=False)


def with_credentials(settings: Settings, credentials: Credentials, *, keep: bool = True) -> Settings:
    """The settings with ``credentials`` filled in: a zone's own keys, else the shared ``s3``
    ones, else (``keep``) what the settings hold."""

    def filled(name: str, section: _Section) -> _Section:
        held = (section.access_key_id, section.secret_access_key) if keep else ("", "")
        key_id, secret = credentials.get(name) or credentials.get("s3") or held
        return replace(section, access_key_id=key_id, secret_access_key=secret)

    return replace(
        settings,
        s3=filled("s3", settings.s3),
        archive=filled("archive", settings.archive),
        restricted=filled("restricted", settings.restricted),
        research=filled("research", settings.research),
        datasets=filled("datasets", settings.datasets),
    )


def _new_key_text() -> bytes:
    return secrets.token_bytes(MIN_KEY_BYTES).hex().encode("ascii")


def _key_file(settings: Settings, project: ProjectName) -> bytes:
    restricted = settings.restricted
    for other in ("research", "datasets"):
        if settings.zone(other).uri.rstrip("/") == restricted.uri.rstrip("/"):
            raise ConfigError(f"the restricted zone must not be the {other} zone (it holds key material)")
    key_name = f"keys/{project}.key"
    if not restricted.is_s3:
        return parse_key(_local_key_file(restricted.local_path / key_name), f"restricted/{key_name}")
    store = open_zone(settings, "restricted")
    if not store.exists(key_name):
        store.create(key_name, _new_key_text())  # of two racing creators one wins; both read its key
    return parse_key(store.get(key_name).decode("ascii", "replace"), f"restricted/{key_name}")


def _local_key_file(path: Path) -> str:
    """The key file's text, creating it first if missing: written and synced under a temporary
    name with mode 0600, then linked into place, so no reader ever sees a partial key."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    if not path.exists():
        temp = path.with_name(f".{path.name}.{secrets.token_hex(8)}")
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(_new_key_text())
                fh.flush()
                os.fsync(fh.fileno())
            os.link(temp, path)
        except FileExistsError:
            pass  # another process created it first: its key is the key
        finally:
            temp.unlink(missing_ok=True)
    return path.read_text()
