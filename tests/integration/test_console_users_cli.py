"""`storelink users`: console users added with a prompted or piped password, listed, refused when wrong, removed."""

from __future__ import annotations

import json
from pathlib import Path

from connector.infra.runtime import Runtime
from connector.merchants import users
from connector.sandbox.feeds import write_feed
from tests.fixtures import Runner
from tests.helpers import add_feed_merchant

PASSWORD = "a long enough password"


def test_users_are_added_listed_and_removed(runner: Runner, rt: Runtime, tmp_path: Path) -> None:
    add_feed_merchant(rt, write_feed(tmp_path / "a.csv", 2), name="acme")
    prompted = runner(
        "users", "add", "Ana@Example.com", "--role", "support", input=f"{PASSWORD}\n{PASSWORD}\n"
    )
    assert prompted.exit_code == 0, prompted.output
    assert "user 1 ana@example.com added (support)" in prompted.output
    piped = runner(
        "users", "add", "bo@acme.example", "--role", "merchant", "--merchant", "acme", "--password-stdin",
        input=f"{PASSWORD}\n",
    )  # fmt: skip
    assert piped.exit_code == 0, piped.output
    listed = json.loads(runner("users", "list", "--json").output)
    assert [(u["email"], u["role"], u["merchants"]) for u in listed] == [
        ("ana@example.com", "support", []),
        ("bo@acme.example", "merchant", ["acme"]),
    ]
    with rt.db.session() as session:
        user = users.authenticate(session, "BO@acme.example", PASSWORD)
        assert user is not None and user.password_hash.startswith("$argon2id$")
        assert PASSWORD not in user.password_hash
        assert users.authenticate(session, "bo@acme.example", PASSWORD + "x") is None

    removed = runner("users", "remove", "bo@acme.example")
    assert removed.exit_code == 0 and "user bo@acme.example removed" in removed.output
    assert [u["email"] for u in json.loads(runner("users", "list", "--json").output)] == ["ana@example.com"]


def test_bad_users_are_refused_in_one_line(runner: Runner, rt: Runtime, tmp_path: Path) -> None:
    add_feed_merchant(rt, write_feed(tmp_path / "a.csv", 2), name="acme")
    cases = [
        (
            ["users", "add", "not-an-email", "--role", "support", "--password-stdin"],
            PASSWORD,
            "invalid_email",
        ),
        (["users", "add", "a@b.example", "--role", "support", "--password-stdin"], "short", "weak_password"),
        (
            ["users", "add", "a@b.example", "--role", "merchant", "--password-stdin"],
            PASSWORD,
            "merchants_required",
        ),
        (
            ["users", "add", "a@b.example", "--role", "merchant", "--merchant", "nope", "--password-stdin"],
            PASSWORD,
            "merchant_not_found",
        ),
        (
            ["users", "add", "a@b.example", "--role", "support", "--merchant", "acme", "--password-stdin"],
            PASSWORD,
            "invalid_role",
        ),
        (["users", "remove", "nobody@b.example"], "", "user_not_found"),
    ]
    for args, password, code in cases:
        result = runner(*args, input=f"{password}\n")
        assert result.exit_code == 1, (args, result.output)
        assert f"[{code}]" in result.output and "Traceback" not in result.output, result.output
    assert (
        runner(
            "users", "add", "a@b.example", "--role", "support", "--password-stdin", input=f"{PASSWORD}\n"
        ).exit_code
        == 0
    )
    again = runner(
        "users", "add", "A@b.example", "--role", "support", "--password-stdin", input=f"{PASSWORD}\n"
    )
    assert again.exit_code == 1 and "[user_exists]" in again.output
    assert json.loads(runner("users", "list", "--json").output)[0]["email"] == "a@b.example"
