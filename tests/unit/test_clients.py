"""Platform clients: key format and hashing, authentication, rotation, deactivation, unique names."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from connector.domain.errors import NotFoundError, ValidationError
from connector.infra.db import Database, make_engine
from connector.infra.migrate import upgrade
from connector.infra.models import PlatformClient
from connector.merchants import clients


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    url = f"sqlite:///{tmp_path / 'clients.db'}"
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    database = Database(url)
    yield database
    database.dispose()


def test_keys_have_the_documented_shape_and_are_unique() -> None:
    keys = {clients.generate_key() for _ in range(200)}
    assert len(keys) == 200
    for key in keys:
        assert key.startswith("sl_live_") and len(key) == len("sl_live_") + 32
        assert clients.looks_like_key(key)


def test_hash_is_sha256_hex() -> None:
    key = clients.generate_key()
    assert clients.hash_key(key) == hashlib.sha256(key.encode()).hexdigest()
    assert len(clients.hash_key(key)) == 64


def test_create_stores_only_the_hash(db: Database) -> None:
    with db.session() as session:
        client, key = clients.create_client(session, "  Acme  ")
        client_id = client.id
    with db.session() as session:
        stored = session.get(PlatformClient, client_id)
        assert stored is not None and stored.name == "Acme" and stored.active
        assert stored.api_key_hash == clients.hash_key(key) and key not in stored.api_key_hash


def test_authenticate(db: Database) -> None:
    with db.session() as session:
        client, key = clients.create_client(session, "acme")
        client_id = client.id
    with db.session() as session:
        found = clients.authenticate(session, key)
        assert found is not None and found.id == client_id
        assert clients.authenticate(session, key[:-1] + ("A" if key[-1] != "A" else "B")) is None
        assert clients.authenticate(session, "") is None
        assert clients.authenticate(session, "sl_live_short") is None
        assert clients.authenticate(session, key + "x") is None
        assert clients.authenticate(session, "sl_live_" + "é" * 32) is None


def test_rotate_key_invalidates_the_old_key(db: Database) -> None:
    with db.session() as session:
        client, old = clients.create_client(session, "acme")
        client_id = client.id
    with db.session() as session:
        _, new = clients.rotate_key(session, client_id)
    assert new != old
    with db.session() as session:
        assert clients.authenticate(session, old) is None
        found = clients.authenticate(session, new)
        assert found is not None and found.id == client_id


def test_deactivated_clients_are_refused(db: Database) -> None:
    with db.session() as session:
        client, key = clients.create_client(session, "acme")
        client_id = client.id
    with db.session() as session:
        assert not clients.deactivate(session, client_id).active
    with db.session() as session:
        assert clients.authenticate(session, key) is None


def test_unknown_client_is_not_found(db: Database) -> None:
    with db.session() as session, pytest.raises(NotFoundError):
        clients.rotate_key(session, 999)
    with db.session() as session, pytest.raises(NotFoundError):
        clients.deactivate(session, 999)


@pytest.mark.parametrize("name", ["", "   ", "x" * 201])
def test_invalid_names_are_refused(db: Database, name: str) -> None:
    with db.session() as session, pytest.raises(ValidationError):
        clients.create_client(session, name)


def test_duplicate_name_is_a_validation_error(db: Database) -> None:
    with db.session() as session:
        clients.create_client(session, "acme")
    with db.session() as session, pytest.raises(ValidationError, match="already exists"):
        clients.create_client(session, "acme")
    with db.session() as session:
        assert session.query(PlatformClient).count() == 1
