"""Signed decisions: Ed25519 over a canonical JSON payload, with OpenSSH key formats.

Why this scheme: deciders reuse the keys they already have (``ssh-keygen -t ed25519``), and
the governed config lists their public keys as ``allowed_signers`` lines, the file format git
uses for SSH-signed commits (``principal[,principal] [options] ssh-ed25519 AAAA… [comment]``).
Signing and verifying run in-process through ``cryptography``: no ``ssh-keygen`` subprocess,
no agent, and the same code on a laptop, in CI and on a Spark driver.

What is signed is ``DOMAIN`` + the canonical JSON of ``decision_payload`` (request id, the
decision's position ``seq`` in the request's history, action, signer, identity mode, time,
expiry, requester, options, cohort and manifest hashes, catalog version), so a signature cannot
be replayed on another request, another decision or another position of the same request (a
decider that loses a commit race signs again for its new position).

An ``allowed_signers`` line supports exact principals and the options ``valid-after``,
``valid-before`` (``YYYYMMDD[HHMM[SS]][Z]``, read as UTC) and ``namespaces`` (when given it
must list ``lakehouse``). Wildcard principals, ``cert-authority`` and key types other than
``ssh-ed25519`` are refused: the list is a register of named people, not patterns.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from lakehouse.config import Settings
from lakehouse.errors import ConfigError, Refused
from lakehouse.governance.audit import canonical
from lakehouse.governance.identity import Identity

DOMAIN = b"lakehouse-decision-v1\n"
NAMESPACE = "lakehouse"
KEY_TYPE = "ssh-ed25519"
_TIME = re.compile(r"^(\d{8})(\d{4}(\d{2})?)?Z?$")
_OPTION = re.compile(r'^([A-Za-z-]+)(?:="([^"]*)")?$')


# --- payload --------------------------------------------------------------------


def decision_payload(
    row: Mapping[str, Any], *, options: list[str], cohort_json: str, requester: str
) -> dict[str, Any]:
    """What a decider signs, from a decision row (as written or read back) and its request.

    Built from the row itself on both sides, so what verification recomputes is exactly what
    was signed; dates become ISO 8601 text (UTC, microseconds)."""
    at: datetime = row["at"]
    expires: date | None = row.get("expires")
    return {
        "request_id": row["request_id"],
        "seq": row.get("seq"),  # its place in the request's history: no replay within a request
        "action": row["action"],
        "signer": row["user"],
        "identity_mode": row.get("identity_mode"),
        "at": at.astimezone(UTC).isoformat(timespec="microseconds"),
        "expires": expires.isoformat() if expires else None,
        "approvals_required": row.get("approvals_required"),
        "requester": requester,
        "options": sorted(options),
        "cohort_sha256": hashlib.sha256(cohort_json.encode()).hexdigest(),
        "manifest_sha256": row.get("manifest_sha256"),
        "manifest_entries": row.get("manifest_entries"),
        "catalog_version": row.get("catalog_version"),
    }


def _message(payload: Mapping[str, Any]) -> bytes:
    return DOMAIN + canonical(dict(payload)).encode()


# --- private key ----------------------------------------------------------------


def signatures_required(settings: Settings) -> bool:
    """Whether every decision must be signed: always, except in a pure demo root (``asserted``
    identities and no ``allowed_signers`` at all)."""
    return settings.identity.mode != "asserted" or bool(settings.policy.allowed_signers)


def load_signing_key(settings: Settings) -> Ed25519PrivateKey | None:
    """The acting user's private key from ``[identity] signing_key``; None when none is set.

    Refused (one line, the file named, never its content) when the file is missing, readable
    by others, passphrase-protected, or not an Ed25519 OpenSSH/PEM private key."""
    configured = settings.identity.signing_key.strip()
    if not configured:
        return None
    path = Path(configured).expanduser()
    try:
        mode = path.stat().st_mode
        data = path.read_bytes()
    except OSError:
        raise Refused(f"signing key {path} cannot be read") from None
    if os.name == "posix" and mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise Refused(f"signing key {path} is accessible by others; chmod 600 it")
    try:
        key = _private_key(data)
    except TypeError:
        raise Refused(
            f"signing key {path} is passphrase-protected; lakehouse reads unencrypted keys only"
        ) from None
    except (ValueError, UnsupportedAlgorithm):
        raise Refused(f"signing key {path} is not an OpenSSH or PEM private key") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise Refused(f"signing key {path} is not an Ed25519 key (ssh-keygen -t ed25519)")
    return key


def _private_key(data: bytes) -> Any:
    if b"OPENSSH PRIVATE KEY" in data:
        return serialization.load_ssh_private_key(data, password=None)
    return serialization.load_pem_private_key(data, password=None)


def openssh_public(key: Ed25519PublicKey) -> str:
    """``ssh-ed25519 AAAA…``: a public key as OpenSSH writes it."""
    return key.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()


def public_line(settings: Settings, identity: Identity) -> str:
    """The ``allowed_signers`` line that lets ``identity`` sign with the configured key, valid
    from today (UTC); Refused when no key is configured."""
    key = load_signing_key(settings)
    if key is None:
        raise Refused("no signing key: set [identity] signing_key (or LAKEHOUSE_IDENTITY_SIGNING_KEY)")
    name = identity.name
    if not name or any(c.isspace() or c in ',"' for c in name):
        raise Refused("this identity cannot be written as an allowed_signers principal")
    today = datetime.now(UTC).strftime("%Y%m%d")
    return f'{name} valid-after="{today}" {openssh_public(key.public_key())} lakehouse:{identity.mode}'


def sign_decision(settings: Settings, payload: Mapping[str, Any]) -> str | None:
    """The decider's signature (base64) over ``payload``.

    Refused when signatures are required and no key is configured, or when the key does not
    verify against ``allowed_signers`` for the signer (caught now, not at the export). None in a
    demo root without a key."""
    key = load_signing_key(settings)
    required = signatures_required(settings)
    if key is None:
        if required:
            raise Refused(
                "decisions must be signed: set [identity] signing_key to your Ed25519 key "
                "(see `lakehouse keys`)"
            )
        return None
    signature = base64.b64encode(key.sign(_message(payload))).decode()
    if required:
        at = datetime.fromisoformat(payload["at"])
        verify_decision(settings, str(payload["signer"]), payload, signature, at)
    return signature


# --- allowed signers ------------------------------------------------------------


@dataclass(frozen=True)
class AllowedSigner:
    """One principal's key from one ``allowed_signers`` line, with its validity window."""

    principal: str
    key: Ed25519PublicKey
    valid_after: datetime | None
    valid_before: datetime | None
    line: int

    def valid_at(self, at: datetime) -> bool:
        return (self.valid_after is None or at >= self.valid_after) and (
            self.valid_before is None or at <= self.valid_before
        )


def allowed_signers(settings: Settings) -> list[AllowedSigner]:
    """Every (principal, key) the governed config allows; ConfigError naming the line otherwise."""
    found: list[AllowedSigner] = []
    for number, line in enumerate(settings.policy.allowed_signers, start=1):
        text = line.strip()
        if text and not text.startswith("#"):
            found.extend(_parse_line(text, number))
    return found


def _parse_line(text: str, number: int) -> list[AllowedSigner]:
    where = f"[policy] allowed_signers line {number}"
    tokens = _tokens(text)
    if len(tokens) < 3:
        raise ConfigError(f"{where}: expected principals, optional options, key type and key")
    principals, rest = tokens[0], tokens[1:]
    options: dict[str, str | None] = {}
    if rest[0] != KEY_TYPE and not rest[0].startswith(("ssh-", "ecdsa-", "sk-")):
        options, rest = _options(rest[0], where), rest[1:]
    if len(rest) < 2 or rest[0] != KEY_TYPE:
        raise ConfigError(f"{where}: only {KEY_TYPE} keys are accepted")
    try:
        key = serialization.load_ssh_public_key(f"{rest[0]} {rest[1]}".encode())
    except (ValueError, UnsupportedAlgorithm, binascii.Error):
        raise ConfigError(f"{where}: the key is not a valid {KEY_TYPE} public key") from None
    if not isinstance(key, Ed25519PublicKey):
        raise ConfigError(f"{where}: only {KEY_TYPE} keys are accepted")
    names = principals.split(",")
    if any(not n or any(c in n for c in "*?!") for n in names):
        raise ConfigError(f"{where}: principals must be exact names (no patterns)")
    spaces = options.get("namespaces")
    if spaces is not None and NAMESPACE not in spaces.split(","):
        return []  # a key for other uses (git commits, …): never a decision signer
    after, before = (_time(options.get(k), f"{where}: {k}") for k in ("valid-after", "valid-before"))
    return [AllowedSigner(n, key, after, before, number) for n in names]


def _tokens(text: str) -> list[str]:
    """Split on blanks outside double quotes (options may quote commas and blanks)."""
    tokens, current, quoted = [], "", False
    for char in text:
        if char == '"':
            quoted = not quoted
        if char.isspace() and not quoted:
            if current:
                tokens.append(current)
            current = ""
        else:
            current += char
    return [*tokens, current] if current else tokens


def _options(text: str, where: str) -> dict[str, str | None]:
    options: dict[str, str | None] = {}
    for part in re.findall(r'(?:[^,"]|"[^"]*")+', text):
        match = _OPTION.fullmatch(part)
        if match is None:
            raise ConfigError(f'{where}: option {part.split("=")[0]!r} must read name="value"')
        name = match.group(1).lower()
        if name not in ("valid-after", "valid-before", "namespaces"):
            raise ConfigError(f"{where}: unsupported option {name!r}")
        options[name] = match.group(2)
    return options


def _time(value: str | None, where: str) -> datetime | None:
    if value is None:
        return None
    match = _TIME.fullmatch(value)
    if not match:
        raise ConfigError(f"{where} must be YYYYMMDD[HHMM[SS]][Z]")
    digits = (match.group(1) + (match.group(2) or "")).ljust(14, "0")
    try:
        return datetime.strptime(digits, "%Y%m%d%H%M%S").replace(tzinfo=UTC)
    except ValueError:
        raise ConfigError(f"{where} is not a real date") from None


# --- verification ---------------------------------------------------------------


def verify_decision(
    settings: Settings, signer: str, payload: Mapping[str, Any], signature: str | None, at: datetime
) -> None:
    """Returns when ``signature`` is ``signer``'s over ``payload`` with a key the config allowed
    them at ``at``; Refused with the one-line reason otherwise."""
    if payload.get("signer") != signer:
        raise Refused(f"signature of {signer} covers another signer")
    if not signature:
        raise Refused(f"decision by {signer} is not signed")
    try:
        raw = base64.b64decode(signature, validate=True)
    except (binascii.Error, ValueError):
        raise Refused(f"signature of {signer} is not valid base64") from None
    keys = [s for s in allowed_signers(settings) if s.principal == signer]
    if not keys:
        raise Refused(f"{signer} has no key in [policy] allowed_signers")
    current = [s for s in keys if s.valid_at(at)]
    if not current:
        when = at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        raise Refused(f"no key of {signer} in allowed_signers was valid at {when}")
    message = _message(payload)
    for allowed in current:
        try:
            allowed.key.verify(raw, message)
            return
        except InvalidSignature:
            continue
    raise Refused(f"signature of {signer} does not verify with their allowed_signers key")
