"""The serving demo prints a support sign-in that opens the console: a fresh user with a random password."""

from __future__ import annotations

from connector.demo.serving import console_sign_in
from connector.infra.runtime import Runtime
from connector.merchants import users


def test_the_printed_sign_in_opens_the_console_and_a_second_one_replaces_it(rt: Runtime) -> None:
    email, password = console_sign_in(rt)
    again_email, again_password = console_sign_in(rt)  # a demo served again: a new password, one user
    assert again_email == email and again_password != password
    with rt.db.session() as session:
        assert [row.role for row in users.list_users(session) if row.email == email] == [users.SUPPORT]
        assert users.authenticate(session, email, password) is None
        assert users.authenticate(session, email, again_password) is not None
