"""Settings load from the environment, fail with the variable's name, and never print secrets."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from config.settings import Settings, SettingsError, load_settings
from connector.domain import registry
from connector.merchants.connect import connect_flow


def test_defaults_use_the_embedded_default(monkeypatch, tmp_path):
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.delenv("REDIS_URL", raising=False)
    monkeypatch.setenv("DATA_DIR", str(tmp_path))
    settings = load_settings()
    assert settings.redis_url == ""
    assert settings.effective_database_url == f"sqlite:///{tmp_path / 'storelink.db'}"


def test_bad_values_name_the_variable(monkeypatch):
    monkeypatch.setenv("WEB_PORT", "not-a-port")
    monkeypatch.setenv("REDIS_URL", "localhost:6379")
    with pytest.raises(SettingsError) as exc:
        load_settings()
    message = str(exc.value)
    assert "WEB_PORT" in message and "REDIS_URL" in message


def test_postgres_urls_use_psycopg(monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "postgresql://u@db/x")
    assert load_settings().database_url == "postgresql+psycopg://u@db/x"


def test_secrets_are_not_printed(monkeypatch):
    key = Fernet.generate_key().decode()
    monkeypatch.setenv("SECRET_KEYS", key)
    settings = load_settings()
    assert key not in repr(settings)
    assert key not in str(settings.model_dump())


def _store_settings() -> dict[str, str]:
    """The settings store adapters declare (`StoreSetting`), by environment variable: their descriptions."""
    flows = [connect_flow(kind) for kind in registry.kinds()]
    return {
        setting.env: setting.description for flow in flows if flow is not None for setting in flow.settings
    }


def test_readme_configuration_table_matches_settings():
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    rows = re.findall(r"^\| `([A-Z_]+)` \| (.+?) \| (.+?) \|$", readme, flags=re.M)
    declared = _store_settings()
    assert declared, "the adapters declare store settings (Walmart's base URL at least)"
    assert not {name.lower() for name in declared} & set(Settings.model_fields), "declared once"
    assert {name for name, _, _ in rows} == {name.upper() for name in Settings.model_fields} | set(declared)
    for name, _default, meaning in rows:
        expected = declared[name] if name in declared else Settings.model_fields[name.lower()].description
        assert meaning == expected, name
