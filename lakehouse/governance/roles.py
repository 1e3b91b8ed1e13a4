"""Who may do what: roles from ``[roles]``, policy from ``[policy]`` in the config."""

from __future__ import annotations

from lakehouse.config import Settings
from lakehouse.errors import ConfigError, Refused

ROLES = ("requesters", "approvers", "operators", "admins")


def roles_of(settings: Settings, user: str) -> set[str]:
    section = settings.section("roles")
    return {role for role in ROLES if user in (section.get(role) or [])}


def require_role(settings: Settings, user: str, *roles: str) -> set[str]:
    """The user's roles, or Refused when the user is unknown or has none of ``roles``."""
    if not user:
        raise Refused("no user given: pass --user or set LAKEHOUSE_USER")
    held = roles_of(settings, user)
    if not held:
        raise Refused(f"unknown user {user!r}: not in any [roles] list")
    if not held.intersection(roles):
        raise Refused(f"user {user!r} is not in [roles] {' or '.join(roles)}")
    return held


def approvals_required(settings: Settings) -> int:
    value = settings.section("policy").get("approvals_required", 1)
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ConfigError("[policy] approvals_required must be an integer >= 1")
    return value


def max_validity_days(settings: Settings) -> int:
    value = settings.section("policy").get("max_validity_days", 365)
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ConfigError("[policy] max_validity_days must be an integer >= 1")
    return value
