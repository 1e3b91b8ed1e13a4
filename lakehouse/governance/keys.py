"""What `lakehouse keys` reports: who the tool sees, whether their signing key works, and the
``allowed_signers`` line a governance admin adds for them (the setup a signer goes through)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from lakehouse.config import Settings
from lakehouse.errors import ConfigError, Refused
from lakehouse.governance.identity import Identity
from lakehouse.governance.roles import roles_of
from lakehouse.governance.signing import (
    allowed_signers,
    load_signing_key,
    openssh_public,
    public_line,
    signatures_required,
)

MAKE_KEY = "ssh-keygen -t ed25519 -f ~/.ssh/lakehouse_ed25519"


@dataclass(frozen=True)
class KeyStatus:
    identity: str
    mode: str
    roles: list[str]
    signatures_required: bool
    signing_key: str | None  # the configured path
    public_key: str | None
    listed: bool  # allowed_signers holds this key for this identity, valid now
    allowed_signers_line: str | None  # to add when not listed
    problems: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def lines(self) -> list[str]:
        roles = ", ".join(self.roles) or "none"
        lines = [f"identity: {self.identity} (mode {self.mode})", f"roles: {roles}"]
        if self.signing_key is None:
            lines.append(
                f"signing key: none; make one with `{MAKE_KEY}` and set [identity] signing_key "
                "(or LAKEHOUSE_IDENTITY_SIGNING_KEY) to its path"
            )
        else:
            lines.append(f"signing key: {self.signing_key} ({self.public_key or 'unusable'})")
        lines += [f"problem: {p}" for p in self.problems]
        if self.listed:
            lines.append("allowed_signers: this key may sign your decisions now")
        elif self.allowed_signers_line:
            ask = "ask a governance admin to add this line to [policy] allowed_signers in lakehouse.toml"
            lines += [f"allowed_signers: not listed; {ask}:", f"  {self.allowed_signers_line}"]
        if not self.signatures_required:
            lines.append("signatures: not required (asserted identities, no allowed_signers: a demo root)")
        return lines


def key_status(settings: Settings, identity: Identity, *, now: datetime | None = None) -> KeyStatus:
    """The signing setup of ``identity``; problems are reported, not raised (this is a diagnosis)."""
    problems: list[str] = []
    configured = settings.identity.signing_key.strip() or None
    public, line, listed = None, None, False
    try:
        key = load_signing_key(settings)
        if key is not None:
            public = openssh_public(key.public_key())
            line = public_line(settings, identity)
    except Refused as exc:
        problems.append(str(exc))
    if public is not None:
        at = (now or datetime.now(UTC)).astimezone(UTC)
        try:
            mine = [s for s in allowed_signers(settings) if s.principal == identity.name and s.valid_at(at)]
            listed = any(openssh_public(s.key) == public for s in mine)
        except ConfigError as exc:
            problems.append(str(exc))
    return KeyStatus(
        identity=identity.name,
        mode=identity.mode,
        roles=sorted(roles_of(settings, identity.name)),
        signatures_required=signatures_required(settings),
        signing_key=configured,
        public_key=public,
        listed=listed,
        allowed_signers_line=None if listed else line,
        problems=problems,
    )
