"""The audit's keys, checkpoint directory and checkpointer as the settings
give them (docs/operations.md#audit, docs/configuration.md).

The signing key comes from LEDGER_AUDIT_SIGNING_KEY (PEM text) or
LEDGER_AUDIT_SIGNING_KEY_FILE. Without either, a local setup generates one
in its data directory (and its public key into the public keys file) and
logs that it did; with LEDGER_ENVIRONMENT=production the service refuses to
start instead: a key the database's host made for itself proves nothing to
an auditor.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

import structlog

from interface.adapters.audit_checkpoint_directory import CheckpointDirectory
from interface.adapters.audit_keys import (
    AuditKeyError,
    CheckpointSigner,
    PublicKeys,
    write_key_pair,
)
from interface.settings import Settings
from interface.workers.checkpointer import Checkpointer

log = structlog.get_logger(__name__)

PRODUCTION: Final[str] = "production"
# Under the data directory, when the settings name no other place.
AUDIT_FOLDER: Final[str] = "audit"
GENERATED_KEY_FILE: Final[str] = "signing-key.pem"
PUBLIC_KEYS_FILE: Final[str] = "public-keys.pem"
CHECKPOINTS_FOLDER: Final[str] = "checkpoints"


class AuditKeyMissing(RuntimeError):
    pass


def public_keys_path(settings: Settings) -> Path:
    return settings.audit_public_keys_file or settings.data_dir / AUDIT_FOLDER / PUBLIC_KEYS_FILE


def checkpoint_dir(settings: Settings) -> Path:
    return settings.audit_checkpoint_dir or settings.data_dir / AUDIT_FOLDER / CHECKPOINTS_FOLDER


def audit_signer(settings: Settings) -> CheckpointSigner:
    if settings.audit_signing_key is not None:
        return CheckpointSigner.from_pem(settings.audit_signing_key.get_secret_value().encode())
    if settings.audit_signing_key_file is not None:
        return CheckpointSigner.from_pem(settings.audit_signing_key_file.read_bytes())
    if settings.environment == PRODUCTION:
        raise AuditKeyMissing(
            "LEDGER_ENVIRONMENT=production needs an audit signing key: set "
            "LEDGER_AUDIT_SIGNING_KEY_FILE or LEDGER_AUDIT_SIGNING_KEY (`ledger audit keygen`)"
        )
    generated = settings.data_dir / AUDIT_FOLDER / GENERATED_KEY_FILE
    if generated.exists():
        return CheckpointSigner.from_pem(generated.read_bytes())
    signer = CheckpointSigner.generate()
    write_key_pair(signer, generated, public_keys_path(settings))
    log.warning(
        "audit_signing_key_generated",
        path=str(generated),
        public_keys=str(public_keys_path(settings)),
        key_id=signer.key_id,
    )
    return signer


def audit_public_keys(settings: Settings, given: Path | None = None) -> PublicKeys:
    """The keys a verifier trusts: the file given, else the configured one."""
    path = given or public_keys_path(settings)
    if not path.exists():
        raise AuditKeyError(
            f"no public keys file at {path} (--public-key, or LEDGER_AUDIT_PUBLIC_KEYS_FILE)"
        )
    return PublicKeys.from_file(path)


def trusted_public_keys(settings: Settings) -> PublicKeys | None:
    """The configured public keys, or None while there are none yet (the
    default local setup writes them when the checkpointer first starts)."""
    path = public_keys_path(settings)
    return PublicKeys.from_file(path) if path.exists() else None


def build_checkpointer(
    settings: Settings, database_url: str, *, start: bool = False
) -> Checkpointer:
    checkpointer = Checkpointer(
        database_url=database_url,
        signer=audit_signer(settings),
        directory=CheckpointDirectory(checkpoint_dir(settings)),
        events_per_checkpoint_max=settings.audit_checkpoint_events,
        interval_s=settings.audit_checkpoint_interval_s,
    )
    if start:
        checkpointer.start()
    return checkpointer
