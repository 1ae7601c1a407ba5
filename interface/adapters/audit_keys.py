"""Ed25519 keys for signed checkpoints (docs/operations.md#audit).

The private key lives outside the database: in a PEM file
(LEDGER_AUDIT_SIGNING_KEY_FILE) or the environment (LEDGER_AUDIT_SIGNING_KEY,
the PEM text). Each checkpoint names its key by id, the first 16 hex digits
of sha256 of the raw public key, so after a rotation the old checkpoints still
verify: the public keys file lists every key ever used, one PEM block each,
and a verifier is given that file (or a key of its own choosing).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

KEY_ID_HEX_DIGITS: Final[int] = 16
_PEM_END: Final[bytes] = b"-----END PUBLIC KEY-----"


class AuditKeyError(ValueError):
    pass


def key_id_of(public_key: Ed25519PublicKey) -> str:
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:KEY_ID_HEX_DIGITS]


def public_key_pem(public_key: Ed25519PublicKey) -> bytes:
    return public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


@dataclass(frozen=True)
class CheckpointSigner:
    private_key: Ed25519PrivateKey

    @property
    def public_key(self) -> Ed25519PublicKey:
        return self.private_key.public_key()

    @property
    def key_id(self) -> str:
        return key_id_of(self.public_key)

    def sign(self, statement: bytes) -> bytes:
        return self.private_key.sign(statement)

    @classmethod
    def generate(cls) -> CheckpointSigner:
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def from_pem(cls, pem: bytes) -> CheckpointSigner:
        try:
            key = serialization.load_pem_private_key(pem, password=None)
        except (ValueError, TypeError) as error:
            raise AuditKeyError(f"not a PEM private key: {error}") from error
        if not isinstance(key, Ed25519PrivateKey):
            raise AuditKeyError("the audit signing key must be an Ed25519 key")
        return cls(key)

    def private_pem(self) -> bytes:
        return self.private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )


class PublicKeys:
    """The public keys a verifier trusts, by key id."""

    def __init__(self, keys: list[Ed25519PublicKey] | None = None) -> None:
        self._keys: dict[str, Ed25519PublicKey] = {}
        for key in keys or []:
            self.add(key)

    def add(self, key: Ed25519PublicKey) -> None:
        self._keys[key_id_of(key)] = key

    @property
    def key_ids(self) -> list[str]:
        return sorted(self._keys)

    def __len__(self) -> int:
        return len(self._keys)

    def verifies(self, key_id: str, statement: bytes, signature: bytes) -> bool:
        key = self._keys.get(key_id)
        if key is None:
            return False
        try:
            key.verify(signature, statement)
        except InvalidSignature:
            return False
        return True

    def pem(self) -> bytes:
        return b"".join(public_key_pem(self._keys[key_id]) for key_id in self.key_ids)

    @classmethod
    def from_pem(cls, text: bytes) -> PublicKeys:
        """Every PEM public key block of the text (a file may hold several)."""
        keys = cls()
        for block in text.split(_PEM_END):
            if b"-----BEGIN" not in block:
                continue
            try:
                key = serialization.load_pem_public_key(block + _PEM_END + b"\n")
            except ValueError as error:
                raise AuditKeyError(f"not a PEM public key: {error}") from error
            if not isinstance(key, Ed25519PublicKey):
                raise AuditKeyError("audit public keys must be Ed25519 keys")
            keys.add(key)
        if not keys:
            raise AuditKeyError("no public key found")
        return keys

    @classmethod
    def from_file(cls, path: Path) -> PublicKeys:
        return cls.from_pem(path.read_bytes())


def write_key_pair(signer: CheckpointSigner, private_path: Path, public_keys_path: Path) -> None:
    """The private key to its own file (owner-only), the public key appended to
    the public keys file (keys used before stay in it)."""
    private_path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as file:
        file.write(signer.private_pem())
    public_keys_path.parent.mkdir(parents=True, exist_ok=True)
    with public_keys_path.open("ab") as file:
        file.write(public_key_pem(signer.public_key))
