"""Credential encryption with key rotation, and log redaction."""

from __future__ import annotations

import io
import json
import logging

import pytest
from cryptography.fernet import Fernet

from connector.domain.errors import PermanentError
from connector.infra import logs
from connector.infra.crypto import SecretBox


def test_round_trip_and_rotation():
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    token = SecretBox([old]).encrypt({"access_token": "shpat_abc"})
    rotated_box = SecretBox([new, old])
    assert rotated_box.decrypt(token) == {"access_token": "shpat_abc"}
    rotated = rotated_box.rotate(token)
    assert SecretBox([new]).decrypt(rotated) == {"access_token": "shpat_abc"}
    with pytest.raises(PermanentError):
        SecretBox([new]).decrypt(token)


def test_bad_key_is_a_clear_error():
    with pytest.raises(ValueError, match="SECRET_KEYS"):
        SecretBox(["not a key"])


def test_logs_are_json_with_extra_fields_and_redacted():
    stream = io.StringIO()
    logs.configure("INFO", json_output=True, stream=stream)
    log = logging.getLogger("storelink.test")
    log.info(
        "token is shpat_0123456789abcdef", extra={"merchant_id": 7, "access_token": "plain", "note": "x"}
    )
    line = json.loads(stream.getvalue().strip().splitlines()[-1])
    assert line["merchant_id"] == 7
    assert line["access_token"] == logs.REDACTED
    assert "0123456789abcdef" not in line["msg"]
    assert line["level"] == "info" and line["logger"] == "storelink.test"
    logs.configure("WARNING", json_output=False)
