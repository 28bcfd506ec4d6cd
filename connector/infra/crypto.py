"""Encryption at rest for store credentials and webhook secrets (MultiFernet: rotate by prepending a key)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import cast

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

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
