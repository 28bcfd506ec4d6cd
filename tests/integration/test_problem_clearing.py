"""Clearing a problem's cause many times in one transaction (a round of successful deliveries to one endpoint)
writes once, and a sighting in between is still cleared by the next clear."""

from __future__ import annotations

from sqlalchemy import event, select

from connector.infra import problems, runtime
from connector.infra.models import WebhookEndpoint
from connector.infra.models_ops import Problem


def test_a_cause_cleared_twice_in_one_transaction_is_written_once_until_it_is_seen_again(rt: runtime.Runtime):
    statements: list[str] = []

    def count(_conn, _cursor, statement, *_args):  # type: ignore[no-untyped-def]
        statements.append(statement)

    with rt.db.session() as session:
        endpoint = WebhookEndpoint(public_id="we_clear", url="http://127.0.0.1:1/", secret_encrypted=b"x")
        session.add(endpoint)
        session.flush()
        endpoint_id = endpoint.id
    event.listen(rt.db.engine, "before_cursor_execute", count)
    try:
        with rt.db.session() as session:
            problems.raise_problem(session, problems.ENDPOINT_FAILING, endpoint_id=endpoint_id, detail="500")
            problems.clear_problems(session, [problems.ENDPOINT_FAILING], endpoint_id=endpoint_id)
            first = len(statements)
            for _ in range(50):
                problems.clear_problems(session, [problems.ENDPOINT_FAILING], endpoint_id=endpoint_id)
            assert len(statements) == first  # nothing more written
            problems.raise_problem(session, problems.ENDPOINT_FAILING, endpoint_id=endpoint_id, detail="502")
            assert session.scalar(select(Problem.count).where(Problem.endpoint_id == endpoint_id)) == 1
            problems.clear_problems(session, [problems.ENDPOINT_FAILING], endpoint_id=endpoint_id)
            assert session.scalar(select(Problem.id).where(Problem.endpoint_id == endpoint_id)) is None
        with rt.db.session() as session:  # a new transaction clears again
            problems.raise_problem(session, problems.ENDPOINT_FAILING, endpoint_id=endpoint_id, detail="503")
        with rt.db.session() as session:
            problems.clear_problems(session, [problems.ENDPOINT_FAILING], endpoint_id=endpoint_id)
            assert session.scalar(select(Problem.id).where(Problem.endpoint_id == endpoint_id)) is None
    finally:
        event.remove(rt.db.engine, "before_cursor_execute", count)
