"""Signing and verifying decisions (lakehouse.governance.signing) with real Ed25519 keys:
OpenSSH key files, allowed_signers lines as git writes them, validity windows, namespaces,
and keys made by the real ssh-keygen."""

from __future__ import annotations

import base64
import shutil
import subprocess
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from conftest import Lake
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from signers import Signer, make_signer

from lakehouse.config import Settings
from lakehouse.errors import ConfigError, Refused
from lakehouse.governance.audit import canonical
from lakehouse.governance.identity import Identity
from lakehouse.governance.signing import (
    DOMAIN,
    allowed_signers,
    decision_payload,
    load_signing_key,
    public_line,
    sign_decision,
    signatures_required,
    verify_decision,
)

AT = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def local_lake(tmp_path: Path) -> Lake:
    root = tmp_path / "lh"
    root.mkdir()
    return Lake(
        root, "".join(f'[{z}]\nuri = "{z}"\n' for z in ("archive", "restricted", "research", "datasets"))
    )


@pytest.fixture
def bob(tmp_path: Path) -> Signer:
    return make_signer(tmp_path / "keys", "bob")


@pytest.fixture
def carol(tmp_path: Path) -> Signer:
    return make_signer(tmp_path / "keys", "carol")


def payload(request_id: str = "req-000000000001", **changes: object) -> dict[str, object]:
    row = {
        "request_id": request_id,
        "action": "approve",
        "user": "bob",
        "at": AT,
        "identity_mode": "os",
        "expires": date(2025, 6, 30),
        "approvals_required": 1,
        "manifest_sha256": "ab" * 32,
        "manifest_entries": 3,
        "catalog_version": 4,
        **changes,
    }
    return decision_payload(
        row, options=["retain-full-dates"], cohort_json='{"modalities":["CT"]}', requester="alice"
    )


def signed_with(key: Ed25519PrivateKey, data: dict[str, object]) -> str:
    """What a script holding ``key`` would write as a signature."""
    return base64.b64encode(key.sign(DOMAIN + canonical(data).encode())).decode()


def as_bob(lake: Lake, bob: Signer, *lines: str, mode: str = "os") -> Settings:
    return lake.settings(mode=mode, signing_key=str(bob.key_path), allowed_signers=lines or [bob.line()])


def test_sign_then_verify_and_every_field_is_covered(local_lake: Lake, bob: Signer) -> None:
    settings = as_bob(local_lake, bob)
    signature = sign_decision(settings, payload())
    assert signature and len(signature) == 88  # 64 bytes, base64
    verify_decision(settings, "bob", payload(), signature, AT)
    for field, value in [
        ("expires", date(2026, 6, 30)),
        ("manifest_sha256", "cd" * 32),
        ("catalog_version", 5),
        ("action", "reject"),
        ("identity_mode", "asserted"),
        ("seq", 3),  # the same decision replayed at another position of the request
    ]:
        with pytest.raises(Refused, match="does not verify"):
            verify_decision(settings, "bob", payload(**{field: value}), signature, AT)
    other_options = decision_payload(
        {"request_id": "req-000000000001", "action": "approve", "user": "bob", "at": AT},
        options=[],
        cohort_json='{"modalities":["CT"]}',
        requester="alice",
    )
    with pytest.raises(Refused, match="does not verify"):
        verify_decision(settings, "bob", other_options, signature, AT)


def test_replayed_on_another_request_is_refused(local_lake: Lake, bob: Signer) -> None:
    settings = as_bob(local_lake, bob)
    signature = sign_decision(settings, payload("req-000000000001"))
    with pytest.raises(Refused, match="signature of bob does not verify"):
        verify_decision(settings, "bob", payload("req-000000000002"), signature, AT)


def test_wrong_key_and_key_not_allowed(local_lake: Lake, bob: Signer, carol: Signer) -> None:
    # another key signs a payload that claims bob: bob's allowed key does not verify it
    settings = local_lake.settings(mode="os", signing_key=str(carol.key_path), allowed_signers=[bob.line()])
    signature = signed_with(Ed25519PrivateKey.generate(), payload())
    with pytest.raises(Refused, match="does not verify with their allowed_signers key"):
        verify_decision(settings, "bob", payload(), signature, AT)
    # carol signs as herself, but she has no line: refused at signing time already
    with pytest.raises(Refused, match="carol has no key in \\[policy\\] allowed_signers"):
        sign_decision(settings, payload(user="carol"))
    with pytest.raises(Refused, match="is not signed"):
        verify_decision(settings, "bob", payload(), None, AT)
    with pytest.raises(Refused, match="covers another signer"):
        verify_decision(settings, "bob", payload(user="carol"), signature, AT)


def test_validity_window_is_the_time_the_key_was_held(local_lake: Lake, bob: Signer) -> None:
    window = 'valid-after="20250101",valid-before="20250201"'
    settings = as_bob(local_lake, bob, bob.line(window))
    with pytest.raises(Refused, match="no key of bob in allowed_signers was valid at 2025-03-01T12:00:00Z"):
        sign_decision(settings, payload())
    inside = datetime(2025, 1, 15, 9, 30, tzinfo=UTC)
    signature = sign_decision(settings, payload(at=inside))
    verify_decision(settings, "bob", payload(at=inside), signature, inside)
    with pytest.raises(Refused, match="was valid at"):
        verify_decision(settings, "bob", payload(at=inside), signature, datetime(2024, 12, 31, tzinfo=UTC))
    # a rotated key: the old line closed, a new line from the next day
    new = make_signer(bob.key_path.parent / "new", "bob")
    rotated = as_bob(local_lake, new, bob.line('valid-before="20250201"'), new.line('valid-after="20250201"'))
    verify_decision(rotated, "bob", payload(at=inside), signature, inside)
    fresh = sign_decision(rotated, payload())
    verify_decision(rotated, "bob", payload(), fresh, AT)


def test_allowed_signers_lines_as_git_writes_them(local_lake: Lake, bob: Signer) -> None:
    lines = [
        "# approvers",
        f'bob,robert namespaces="git,lakehouse" {bob.public} bob@laptop',
        f'bob namespaces="git" {make_signer(bob.key_path.parent / "g", "bob").public}',  # git only
        "",
    ]
    found = allowed_signers(as_bob(local_lake, bob, *lines))
    assert [(s.principal, s.line) for s in found] == [("bob", 2), ("robert", 2)]
    for bad, reason in [
        (f"*@example.org {bob.public}", "principals must be exact names"),
        (f"bob cert-authority {bob.public}", "unsupported option 'cert-authority'"),
        ("bob ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQ==", "only ssh-ed25519 keys are accepted"),
        ("bob ssh-ed25519 AAAAnotakey", "not a valid ssh-ed25519 public key"),
        (f'bob valid-after="2025-01-01" {bob.public}', "valid-after must be YYYYMMDD"),
        (f"bob valid-after=20250101 {bob.public}", "option 'valid-after' must read name=\"value\""),
        ("bob", "expected principals"),
    ]:
        with pytest.raises(ConfigError, match=rf"allowed_signers line 1: .*{reason}"):
            allowed_signers(as_bob(local_lake, bob, bad))


def test_signing_key_file_checks(local_lake: Lake, bob: Signer, tmp_path: Path) -> None:
    assert load_signing_key(local_lake.settings(mode="os")) is None
    with pytest.raises(Refused, match="decisions must be signed"):
        sign_decision(local_lake.settings(mode="os", allowed_signers=[bob.line()]), payload())
    demo = local_lake.settings(mode="asserted")
    assert not signatures_required(demo) and sign_decision(demo, payload()) is None
    assert signatures_required(local_lake.settings(mode="asserted", allowed_signers=[bob.line()]))

    bob.key_path.chmod(0o644)
    with pytest.raises(Refused, match="accessible by others; chmod 600"):
        load_signing_key(as_bob(local_lake, bob))
    bob.key_path.chmod(0o600)
    missing = tmp_path / "nope"
    with pytest.raises(Refused, match="cannot be read"):
        load_signing_key(local_lake.settings(mode="os", signing_key=str(missing)))
    junk = tmp_path / "junk"
    junk.write_text("not a key")
    junk.chmod(0o600)
    with pytest.raises(Refused, match="not an OpenSSH or PEM private key"):
        load_signing_key(local_lake.settings(mode="os", signing_key=str(junk)))
    pkcs8 = tmp_path / "pkcs8.pem"
    pkcs8.write_bytes(
        Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    pkcs8.chmod(0o600)
    assert load_signing_key(local_lake.settings(mode="os", signing_key=str(pkcs8))) is not None


def test_public_line_is_a_valid_allowed_signers_line(local_lake: Lake, bob: Signer) -> None:
    settings = local_lake.settings(mode="os", signing_key=str(bob.key_path))
    line = public_line(settings, Identity("bob", "os"))
    assert line.startswith('bob valid-after="') and bob.public in line and line.endswith("lakehouse:os")
    (found,) = allowed_signers(local_lake.settings(mode="os", allowed_signers=[line]))
    assert found.principal == "bob" and found.valid_at(datetime.now(UTC))
    with pytest.raises(Refused, match="cannot be written as an allowed_signers principal"):
        public_line(settings, Identity("bob smith", "asserted"))
    with pytest.raises(Refused, match="no signing key"):
        public_line(local_lake.settings(mode="os"), Identity("bob", "os"))


@pytest.mark.skipif(shutil.which("ssh-keygen") is None, reason="ssh-keygen (openssh-client) not installed")
def test_keys_made_by_ssh_keygen(local_lake: Lake, tmp_path: Path) -> None:
    """A user's `ssh-keygen -t ed25519` key signs, and its `.pub` is the allowed_signers key."""
    key = tmp_path / "id_ed25519"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "bob@host", "-f", str(key)], check=True
    )
    public = " ".join(key.with_suffix(".pub").read_text().split()[:2])
    settings = local_lake.settings(mode="os", signing_key=str(key), allowed_signers=[f"bob {public}"])
    signature = sign_decision(settings, payload())
    verify_decision(settings, "bob", payload(), signature, AT)
    encrypted = tmp_path / "id_locked"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "secret-pass", "-f", str(encrypted)], check=True
    )
    with pytest.raises(Refused, match="passphrase-protected"):
        load_signing_key(local_lake.settings(mode="os", signing_key=str(encrypted)))
