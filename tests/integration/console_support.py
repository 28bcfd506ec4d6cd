"""Helpers of the console tests: users, the CSRF token of a page, and signing in through the form."""

from __future__ import annotations

import re
from typing import Any

from flask.testing import FlaskClient

from connector.infra.runtime import Runtime
from connector.merchants import users

PASSWORD = "correct horse battery"
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def add_user(rt: Runtime, email: str, role: str = "support", merchants: tuple[str | int, ...] = ()) -> int:
    with rt.db.session() as session:
        return users.create_user(session, email, PASSWORD, role, merchants).id


def csrf_of(client: FlaskClient, path: str = "/console/sign-in") -> str:
    page = client.get(path)
    assert page.status_code == 200, page.get_data(as_text=True)
    found = _CSRF.search(page.get_data(as_text=True))
    assert found, "the page carries a CSRF token"
    return found.group(1)


def sign_in(client: FlaskClient, email: str, password: str = PASSWORD, **environ: Any) -> Any:
    token = csrf_of(client)
    return client.post(
        "/console/sign-in",
        data={"email": email, "password": password, "csrf_token": token, "next": ""},
        environ_overrides=environ or None,
    )


def post(
    client: FlaskClient, path: str, data: dict[str, str] | None = None, *, page: str = "/console/"
) -> Any:
    """A console form's POST with the CSRF token of `page` (the session's token)."""
    return client.post(path, data={**(data or {}), "csrf_token": csrf_of(client, page)})
