"""Test deciders with real Ed25519 keys: OpenSSH private key files (0600) and their
``allowed_signers`` lines, as `ssh-keygen -t ed25519` and git would have them."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from lakehouse.config import Settings


@dataclass(frozen=True)
class Signer:
    name: str
    key_path: Path
    public: str  # "ssh-ed25519 AAAA…"

    def line(self, options: str = "") -> str:
        """This signer's allowed_signers line (``options`` e.g. ``valid-before="20250101"``)."""
        return " ".join(part for part in (self.name, options, self.public, f"{self.name}@test") if part)

    def acting(self, settings: Settings) -> Settings:
        """``settings`` as this signer's process loads them (their own signing key)."""
        return replace(settings, identity=replace(settings.identity, signing_key=str(self.key_path)))


def make_signer(folder: Path, name: str) -> Signer:
    key = Ed25519PrivateKey.generate()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}_ed25519"
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
        )
    )
    path.chmod(0o600)
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    return Signer(name, path, public.decode())
