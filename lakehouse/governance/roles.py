"""Who may do what: roles from ``[roles]``, policy from ``[policy]`` in the config."""

from __future__ import annotations

from dataclasses import fields

from lakehouse.config import RolesSettings, Settings
from lakehouse.errors import Refused

ROLES = tuple(role.name for role in fields(RolesSettings))


def roles_of(settings: Settings, user: str) -> set[str]:
    """The roles whose list names ``user`` exactly (the config refuses a role written as text)."""
    return {role for role in ROLES if user in getattr(settings.roles, role)}


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
