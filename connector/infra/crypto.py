"""Encryption at rest for store credentials and webhook secrets (MultiFernet: rotate by prepending a key), and
keys derived from the same secret keys for signing (one key per purpose, HKDF-SHA256)."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path
from typing import cast

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from config.settings import Settings
from connector.domain.errors import PermanentError


class SecretBox:
    """Encrypts with the first key, decrypts with any; `rotate` re-encrypts a token under the first key."""

    def __init__(self, keys: list[str]):
        if not keys:
            raise ValueError("at least one Fernet key is required")
        try:
            self._fernet = MultiFernet([Fernet(k.encode()) for k in keys])
        except (ValueError, TypeError):
            raise ValueError(
                "SECRET_KEYS holds a value that is not a Fernet key (32 url-safe base64 bytes)"
            ) from None
        self._keys = [base64.urlsafe_b64decode(k.encode()) for k in keys]
        self._derived: dict[str, tuple[bytes, ...]] = {}

    @classmethod
    def from_settings(cls, settings: Settings) -> SecretBox:
        raw = settings.secret_keys.get_secret_value()
        if raw:
            return cls([k.strip() for k in raw.split(",") if k.strip()])
        return cls([_local_key(settings.data_dir)])

    def encrypt(self, value: dict[str, str] | str) -> bytes:
        text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
        return self._fernet.encrypt(text.encode("utf-8"))

    def decrypt_text(self, token: bytes) -> str:
        try:
            return self._fernet.decrypt(token).decode("utf-8")
        except InvalidToken:
            raise PermanentError(
                "stored secret cannot be decrypted with the configured keys", code="bad_key"
            ) from None

    def decrypt(self, token: bytes | None) -> dict[str, str]:
        if not token:
            return {}
        return cast(dict[str, str], json.loads(self.decrypt_text(token)))

    def rotate(self, token: bytes) -> bytes:
        return self._fernet.rotate(token)

    def derived_keys(self, purpose: str) -> tuple[bytes, ...]:
        """32-byte keys for `purpose` (e.g. signing click ids), one per secret key in the same order: sign with
        the first, accept any, so prepending a new secret key keeps what the old one signed valid."""
        found = self._derived.get(purpose)
        if found is None:
            found = self._derived[purpose] = tuple(derive_key(key, purpose) for key in self._keys)
        return found


def derive_key(secret: bytes, purpose: str) -> bytes:
    """A 32-byte key for `purpose` from `secret` (HKDF-SHA256): keys of different purposes are independent."""
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"storelink:" + purpose.encode())
    return hkdf.derive(secret)


def _local_key(data_dir: Path) -> str:
    """The embedded default's key: generated once, kept readable only by its owner."""
    path = data_dir / "secret.key"
    if path.exists():
        return path.read_text().strip()
    data_dir.mkdir(parents=True, exist_ok=True)
    key = Fernet.generate_key().decode()
    tmp = data_dir / f".secret.key.{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(key)
    try:
        os.link(tmp, path)  # atomic: the first process to link wins, the others read its key
    except FileExistsError:
        pass
    finally:
        tmp.unlink()
    return path.read_text().strip()
