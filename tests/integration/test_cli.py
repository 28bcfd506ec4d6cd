"""The operator CLI against a real database and Redis: clear errors, failed-job visibility, key rotation."""

from __future__ import annotations

import json
from pathlib import Path

from cryptography.fernet import Fernet
from sqlalchemy import select

from connector.infra.crypto import SecretBox
from connector.infra.models import Merchant
from connector.sandbox.feeds import write_feed


def test_add_list_show_and_resync(cli, tmp_path: Path):
    feed = write_feed(tmp_path / "feed.csv", 30)
    assert "merchant 1 (acme, feed) added" in cli(
        "merchants", "add", "feed", "--name", "acme", "--url", str(feed), "--no-sync"
    )
    listed = json.loads(cli("merchants", "list", "--json"))
    assert [(m["name"], m["kind"], m["status"]) for m in listed] == [("acme", "feed", "installed")]
    assert "acme" in cli("merchants", "show", "acme")
    assert "queued" in cli("resync", "acme", "--no-wait")


def test_bad_input_is_a_clear_error(cli, tmp_path: Path):
    out = cli("merchants", "add", "nosuch", "--name", "x", "--url", "https://x.example/f.csv", expect=1)
    assert "unknown store kind 'nosuch'" in out and "Traceback" not in out
    out = cli("merchants", "add", "feed", "--name", "x", "--set", "novalue", expect=2)
    assert "KEY=VALUE" in out
    out = cli("merchants", "show", "ghost", expect=1)
    assert "no merchant 'ghost'" in out
    feed = write_feed(tmp_path / "feed.csv", 3)
    cli("merchants", "add", "feed", "--name", "one", "--url", str(feed), "--no-sync")
    out = cli("merchants", "add", "feed", "--name", "two", "--url", str(feed), "--no-sync", expect=1)
    assert "already exists" in out


def test_bad_settings_name_the_variable(cli, monkeypatch):
    monkeypatch.setenv("WEB_PORT", "eighty")
    out = cli("merchants", "list", expect=1)
    assert "WEB_PORT" in out


def test_failed_jobs_are_listed_and_retried(cli, rt, tmp_path: Path):
    feed = write_feed(tmp_path / "feed.csv", 3)
    cli("merchants", "add", "feed", "--name", "acme", "--url", str(feed), "--no-sync")
    feed.unlink()
    cli("resync", "acme", "--no-wait")
    from tests.helpers import drain

    drain(rt)
    failed = json.loads(cli("jobs", "failed", "--json"))
    assert len(failed["jobs"]) == 1 and failed["jobs"][0]["func"] == "connector.catalog.jobs.run_sync"
    assert failed["jobs"][0]["error"]
    assert failed["sync_runs"][0]["error"]
    assert "requeued 1 job(s)" in cli("jobs", "retry", failed["jobs"][0]["id"])
    assert json.loads(cli("jobs", "failed", "--json"))["jobs"] == []
    cli("jobs", "retry", "no-such-job", expect=1)


def test_keys_rotate_re_encrypts_credentials(cli, settings, monkeypatch, tmp_path: Path):
    feed = write_feed(tmp_path / "feed.csv", 3)
    cli(
        "merchants",
        "add",
        "feed",
        "--name",
        "acme",
        "--url",
        str(feed),
        "--credential",
        "token=s3cret",
        "--no-sync",
    )
    old = settings.secret_keys.get_secret_value()
    new = Fernet.generate_key().decode()
    monkeypatch.setenv("SECRET_KEYS", f"{new},{old}")

    assert "re-encrypted 1 credential set(s)" in cli("keys", "rotate")

    from connector.infra.db import Database

    db = Database(settings.database_url)
    with db.session() as s:
        token = s.scalars(select(Merchant.credentials_encrypted)).one()
    db.dispose()
    assert SecretBox([new]).decrypt(token) == {"token": "s3cret"}  # the old key is no longer needed


def test_client_key_from_the_cli_opens_the_platform_api(cli, rt):
    from connector.app import create_app

    out = cli("clients", "add", "video-platform")
    key = out.split("shown once): ")[1].split()[0]
    api = create_app(rt.settings, rt).test_client()
    assert api.get("/v1/webhook-endpoints", headers={"Authorization": f"Bearer {key}"}).status_code == 200
    assert (
        api.get("/v1/webhook-endpoints", headers={"Authorization": "Bearer sl_live_wrong"}).status_code == 401
    )
    rotated = cli("clients", "rotate-key", "1").split("shown once): ")[1].split()[0]
    assert api.get("/v1/webhook-endpoints", headers={"Authorization": f"Bearer {key}"}).status_code == 401
    assert api.get("/v1/webhook-endpoints", headers={"Authorization": f"Bearer {rotated}"}).status_code == 200
    assert "video-platform" in cli("clients", "list")
    cli("clients", "add", "video-platform", expect=1)
