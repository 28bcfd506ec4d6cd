"""What the web app serves without authentication: no files from the working directory."""

from __future__ import annotations

from pathlib import Path

import pytest

from connector.app import create_app
from connector.infra.runtime import Runtime


def test_no_static_files_are_served_from_the_working_directory(
    rt: Runtime, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "static").mkdir()
    (tmp_path / "static" / "secret.txt").write_text("do not serve", encoding="utf-8")
    (tmp_path / "secret.txt").write_text("do not serve", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    app = create_app(rt.settings, rt)
    http = app.test_client()

    for path in ("/static/secret.txt", "/static/../secret.txt", "/static/app.py"):
        response = http.get(path)
        assert response.status_code == 404, path
        assert b"do not serve" not in response.get_data()
    assert "static" not in {rule.endpoint for rule in app.url_map.iter_rules()}
