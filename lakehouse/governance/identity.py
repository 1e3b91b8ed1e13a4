"""Who is acting, proved rather than typed (``[identity] mode`` in the governed config).

- ``os``: the operating-system login of the process, from its effective uid (not from
  ``$USER`` or ``$LOGNAME``, which the user sets). ``--user`` may only repeat it.
- ``aws``: the caller ARN that STS ``GetCallerIdentity`` reports for the restricted zone's
  credentials (and endpoint, for S3-compatible stores). ``--user`` may only repeat it.
- ``asserted``: the name as typed (``--user`` / ``LAKEHOUSE_USER``), for demos and tests;
  the CLI warns on every command and decisions record the mode.

Roles in ``[roles]`` list identities of the configured mode: logins, ARNs or typed names.
"""

from __future__ import annotations

import os
import pwd
from dataclasses import dataclass

from lakehouse.config import Settings
from lakehouse.errors import ConfigError, LakehouseError, Refused

__all__ = ["ASSERTED_WARNING", "Identity", "current_identity", "os_login"]

ASSERTED_WARNING = (
    "warning: identity mode is 'asserted': user names are taken as typed, not proved (demos and tests only)"
)


@dataclass(frozen=True)
class Identity:
    """An acting identity and the mode that established it (recorded with decisions)."""

    name: str
    mode: str


def os_login() -> str:
    """The login name of the process's effective uid."""
    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        raise Refused(f"identity mode os: uid {os.geteuid()} has no login name") from None


def current_identity(settings: Settings, typed_user: str | None) -> Identity:
    """The identity acting now; ``typed_user`` (``--user``) is taken as is only in asserted
    mode, and must otherwise equal what the mode sees (Refused when it does not)."""
    mode = settings.identity.mode
    typed = (typed_user or "").strip() or None
    if mode == "asserted":
        if typed is None:
            raise ConfigError("no user given: pass --user or set LAKEHOUSE_USER (identity mode asserted)")
        return Identity(typed, mode)
    if mode == "os":
        seen = os_login()
    elif mode == "aws":
        seen = _aws_caller(settings)
    else:  # the loader only lets the choices through
        raise ConfigError(f"[identity] mode {mode!r} is not known")
    if typed is not None and typed != seen:
        raise Refused(f"--user {typed!r} is not who is acting: identity mode {mode} sees {seen!r}")
    return Identity(seen, mode)


def _aws_caller(settings: Settings) -> str:
    from lakehouse.storage.s3 import caller_arn  # boto3 loads only in mode aws

    try:
        return caller_arn(settings.restricted)
    except LakehouseError as exc:
        raise Refused(f"identity mode aws: {exc}") from None
