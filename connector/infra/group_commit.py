"""Group commit: concurrent writes of one process committed together, in one transaction.

A request thread hands its write (an item and the function that writes a list of such items in a session,
returning one result per item) to `GroupCommit.run` and gets its result once the transaction holding it has
committed: a result means the write is durable. A waiting thread leads when fewer than `max_leaders` do: it
takes the writes queued so far (its own among them), writes each kind's items with one call (a few statements
for all of them) in one transaction with their events published together (`connector.infra.outbox.deferred`),
commits once, and wakes their threads; whoever queued meanwhile makes the next batch. Alone, a write is led by
its own thread at once, as if run in a session of its own.

A write that raises, or a commit that fails, rolls the batch back: each of its writes then runs again alone,
in a transaction of its own, and gets its own result or error, so one write never fails or half-writes
another. Writes must be safe to run again after a rollback (their effects outside the database happen after
the commit, in the session's `after_commit` hooks). On SQLite a transaction waits for its turn on a file
lock first (`connector.infra.db.Database.writer_turn`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any, Final, Generic, TypeVar

from sqlalchemy.orm import Session

from connector.infra import outbox
from connector.infra.db import Database

logger = logging.getLogger(__name__)

ItemT = TypeVar("ItemT")
ResultT = TypeVar("ResultT")
WriteMany = Callable[[Session, list[ItemT]], list[ResultT]]
MAX_BATCH: Final = 64
MAX_LEADERS: Final = 2
"""Transactions in flight at once per process where the database lets writers overlap (not SQLite)."""


class _Write(Generic[ItemT, ResultT]):
    __slots__ = ("done", "error", "item", "taken", "value", "write_many")

    def __init__(self, item: ItemT, write_many: WriteMany[ItemT, ResultT]):
        self.item = item
        self.write_many = write_many
        self.taken = False
        self.done = False
        self.value: ResultT | None = None
        self.error: BaseException | None = None


class GroupCommit:
    """One per process and database: batches the writes of concurrent threads into one transaction each.

    At most `max_leaders` transactions are in flight at once: one on SQLite, whose writers take turns anyway;
    two elsewhere, so that one batch's statements go on while the other waits for the server (its rows'
    locks are for the writes to order, `connector.orders.live_checkout` takes its contended one last)."""

    def __init__(self, db: Database, *, max_batch: int = MAX_BATCH, max_leaders: int | None = None):
        self.db = db
        self.max_batch = max_batch
        self.max_leaders = max_leaders if max_leaders is not None else (1 if db.is_sqlite else MAX_LEADERS)
        self._cond = threading.Condition()
        self._queue: list[_Write[Any, Any]] = []
        self._leaders = 0

    def run(self, item: ItemT, write_many: WriteMany[ItemT, ResultT]) -> ResultT:
        """Write `item` (`write_many(session, [item, ...])`) in a transaction, possibly with other threads'
        items; returns its result after the commit, or raises its error (nothing of it was written then)."""
        write = _Write(item, write_many)
        with self._cond:
            self._queue.append(write)
            while not write.taken and self._leaders >= self.max_leaders:
                self._cond.wait()
            leads = not write.taken
            if leads:
                self._leaders += 1
        if leads:
            self._lead(write)
        with self._cond:
            while not write.done:
                self._cond.wait()
        if write.error is not None:
            raise write.error
        return write.value  # type: ignore[return-value]

    def _lead(self, write: _Write[Any, Any]) -> None:
        """Commit batches from the front of the queue until `write` is in one (this leader's or another's)."""
        try:
            while True:
                with self._cond:
                    if write.taken:
                        return
                    batch = self._queue[: self.max_batch]
                    del self._queue[: self.max_batch]
                    for queued in batch:
                        queued.taken = True
                try:
                    self._commit(batch)
                finally:
                    with self._cond:
                        self._cond.notify_all()
        finally:
            with self._cond:
                self._leaders -= 1
                self._cond.notify_all()

    def _commit(self, batch: list[_Write[Any, Any]]) -> None:
        if len(batch) == 1:
            self._alone(batch[0])
            return
        kinds: dict[WriteMany[Any, Any], list[_Write[Any, Any]]] = {}
        for write in batch:
            kinds.setdefault(write.write_many, []).append(write)
        values: list[tuple[_Write[Any, Any], Any]] = []
        try:
            with self.db.writer_turn(), self.db.session() as session, outbox.deferred(session):
                for write_many, writes in kinds.items():
                    results = write_many(session, [write.item for write in writes])
                    values += zip(writes, results, strict=True)
        except Exception:
            logger.info("group commit rolled back; its writes run alone", extra={"writes": len(batch)})
            for write in batch:
                self._alone(write)
            return
        except BaseException as exc:
            for write in batch:
                write.error, write.done = exc, True
            raise
        for write, value in values:
            write.value, write.done = value, True

    def _alone(self, write: _Write[Any, Any]) -> None:
        try:
            with self.db.writer_turn(), self.db.session() as session:
                (write.value,) = write.write_many(session, [write.item])
        except BaseException as exc:
            write.error = exc
        finally:
            write.done = True
