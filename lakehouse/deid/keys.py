"""Per-project de-identification keys, never in the research or datasets zones, never logged.

Lookup order:
1. the environment variable named by ``[deid] key_env`` (default ``LAKEHOUSE_DEID_KEY_{project}``,
   project upper-cased, ``-`` → ``_``): the production path, a secret reference the platform fills;
   the value is the key as hex (at least 32 bytes);
2. the key file ``keys/<project>.key`` in the restricted zone, created on first use with 32 random
   bytes (local files get mode 0600).
"""

from __future__ import annotations

import os
import re
import secrets

from lakehouse.config import Settings
from lakehouse.errors import ConfigError, DeidError

DEFAULT_KEY_ENV = "LAKEHOUSE_DEID_KEY_{project}"
MIN_KEY_BYTES = 32
_PROJECT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")


def load_project_key(settings: Settings, project: str) -> bytes:
    """The project's secret: from the configured env var, else the restricted zone's key file."""
    if not _PROJECT.match(project):
        raise ConfigError("project names are 1-64 letters, digits, '-' or '_'")
    env_name = str(settings.section("deid").get("key_env", DEFAULT_KEY_ENV)).format(
        project=project.upper().replace("-", "_")
    )
    if os.environ.get(env_name):
        return parse_key(os.environ[env_name], f"env var {env_name}")
    return _key_file(settings, project)


def parse_key(text: str, origin: str) -> bytes:
    """A key given as hex text (at least 32 bytes); the message names the origin, never the value."""
    try:
        key = bytes.fromhex(text.strip())
    except ValueError:
        raise DeidError(f"key from {origin} is not hex") from None
    if len(key) < MIN_KEY_BYTES:
        raise DeidError(f"key from {origin} is shorter than {MIN_KEY_BYTES} bytes")
    return key


def _key_file(settings: Settings, project: str) -> bytes:
    restricted = settings.restricted
    for other in ("research", "datasets"):
        if settings.zone(other).uri.rstrip("/") == restricted.uri.rstrip("/"):
            raise ConfigError(f"the restricted zone must not be the {other} zone (it holds key material)")
    key_name = f"keys/{project}.key"
    if not restricted.is_s3:
        return _local_key_file(os.path.join(restricted.local_path, "keys", f"{project}.key"), key_name)
    from lakehouse.storage import open_zone

    store = open_zone(settings, "restricted")
    if not store.exists(key_name):
        # Conditional create: two first users racing end up with the same (winning) key.
        store.create(key_name, secrets.token_bytes(MIN_KEY_BYTES).hex().encode("ascii"))
    return parse_key(store.get(key_name).decode("ascii", "replace"), f"restricted/{key_name}")


def _local_key_file(path: str, key_name: str) -> bytes:
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass
    else:
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_bytes(MIN_KEY_BYTES).hex())
    with open(path) as fh:
        return parse_key(fh.read(), f"restricted/{key_name}")
