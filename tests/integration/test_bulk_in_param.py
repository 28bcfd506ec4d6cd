"""`bulk_insert.in_param`: a statement built once, its IN list bound at each execution, on either database."""

from __future__ import annotations

from sqlalchemy import select

from connector.infra import bulk_insert, runtime
from connector.infra.models import EventPayload


def test_a_statement_built_once_finds_the_values_bound_at_each_execution(rt: runtime.Runtime) -> None:
    dialect = rt.db.engine.dialect.name
    with rt.db.session() as session:
        session.add_all(EventPayload(id=f"msg_{n}", type="inventory.updated", data={}) for n in range(4))
    statement = (
        select(EventPayload.id)
        .where(bulk_insert.in_param(dialect, EventPayload.id, "ids"))
        .order_by(EventPayload.id)
    )
    with rt.db.session() as session:
        for wanted in (["msg_1", "msg_3"], ["msg_0"], [], ["msg_2", "msg_9"]):
            found = session.scalars(statement, {"ids": bulk_insert.param_values(dialect, wanted)}).all()
            assert found == sorted(set(wanted) & {"msg_0", "msg_1", "msg_2", "msg_3"})
