"""Payouts: the platform reports that it paid a creator; the approved entries it names (or every approved
entry of the creator and currency up to a time) become `paid` in one transaction.

Idempotent by the platform's payout id (per platform client): the same payout again answers the first
answer; the same id with another request is a 409 `payout_id_reused`. Refusals, and nothing is written:
`entry_not_found` (422: not an entry of the client's merchants), `creator_mismatch` and `currency_mismatch`
(422), `entry_not_approved` (409: pending or already paid), `nothing_to_pay` (422). A negative entry (a
reversal after an earlier payout) is paid like any other: it lowers the total.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from connector.affiliates.ledger import APPROVED, PAID
from connector.domain import event_types
from connector.domain.errors import RefusedError
from connector.domain.timestamps import iso
from connector.infra import outbox, runtime
from connector.infra.models import AffiliatePayout, CommissionEntry, CommissionTransition, Merchant

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class PayoutRequest:
    platform_payout_id: str
    creator_ref: str
    currency: str
    entry_ids: Sequence[str] | None = None
    approved_up_to: datetime | None = None

    def digest(self) -> str:
        body = {
            "creator_ref": self.creator_ref,
            "currency": self.currency,
            "entry_ids": sorted(self.entry_ids) if self.entry_ids is not None else None,
            "approved_up_to": iso(self.approved_up_to),
        }
        return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def payout_body(payout: AffiliatePayout, entry_ids: Sequence[str]) -> dict[str, Any]:
    return {
        "id": payout.id,
        "platform_payout_id": payout.platform_payout_id,
        "creator_ref": payout.creator_ref,
        "currency": payout.currency,
        "total_minor": payout.total_minor,
        "entry_count": payout.entry_count,
        "entry_ids": list(entry_ids),
        "created_at": iso(payout.created_at),
    }


def _client_entries(client_id: int) -> Any:
    return (
        select(CommissionEntry)
        .join(Merchant, Merchant.id == CommissionEntry.merchant_id)
        .where(Merchant.platform_client_id == client_id)
    )


def _named(session: Session, client_id: int, request: PayoutRequest) -> list[CommissionEntry]:
    ids = list(dict.fromkeys(request.entry_ids or ()))
    found = {
        e.public_id: e
        for e in session.scalars(_client_entries(client_id).where(CommissionEntry.public_id.in_(ids)))
    }
    for index, public_id in enumerate(ids):
        entry = found.get(public_id)
        if entry is None:
            raise RefusedError(
                422,
                "entry_not_found",
                f"entry_ids[{index}]: no commission entry {public_id}",
                errors=[{"field": f"entry_ids.{index}", "message": "no such entry"}],
            )
        if entry.creator_ref != request.creator_ref:
            raise RefusedError(
                422,
                "creator_mismatch",
                f"entry {public_id} was earned by another creator",
                entry_id=public_id,
            )
        if entry.currency != request.currency:
            raise RefusedError(
                422,
                "currency_mismatch",
                f"entry {public_id} is in {entry.currency}, not {request.currency}",
                entry_id=public_id,
            )
    not_approved = [public_id for public_id in ids if found[public_id].state != APPROVED]
    if not_approved:
        raise RefusedError(
            409,
            "entry_not_approved",
            f"{len(not_approved)} of the entries are not approved (pending or already paid)",
            entry_ids=not_approved[:100],
        )
    return [found[public_id] for public_id in ids]


def _up_to(session: Session, client_id: int, request: PayoutRequest) -> list[CommissionEntry]:
    assert request.approved_up_to is not None
    return list(
        session.scalars(
            _client_entries(client_id)
            .where(
                CommissionEntry.creator_ref == request.creator_ref,
                CommissionEntry.currency == request.currency,
                CommissionEntry.state == APPROVED,
                CommissionEntry.approved_at <= request.approved_up_to,
            )
            .order_by(CommissionEntry.id)
        )
    )


def _replay(session: Session, client_id: int, request: PayoutRequest) -> dict[str, Any] | None:
    payout = session.scalars(
        select(AffiliatePayout).where(
            AffiliatePayout.platform_client_id == client_id,
            AffiliatePayout.platform_payout_id == request.platform_payout_id,
        )
    ).first()
    if payout is None:
        return None
    if payout.request_hash != request.digest():
        raise RefusedError(
            409, "payout_id_reused", f"payout {request.platform_payout_id} was recorded with another request"
        )
    ids = session.scalars(
        select(CommissionEntry.public_id)
        .where(CommissionEntry.payout_id == payout.id)
        .order_by(CommissionEntry.id)
    ).all()
    return payout_body(payout, ids)


def _pay(
    session: Session, client_id: int, request: PayoutRequest, entries: Sequence[CommissionEntry]
) -> dict[str, Any]:
    now = datetime.now(UTC)
    payout = AffiliatePayout(
        platform_client_id=client_id,
        platform_payout_id=request.platform_payout_id,
        request_hash=request.digest(),
        creator_ref=request.creator_ref,
        currency=request.currency,
        total_minor=sum(e.amount_minor for e in entries),
        entry_count=len(entries),
        created_at=now,
    )
    session.add(payout)
    session.flush()
    for entry in entries:
        moved = session.execute(
            update(CommissionEntry)
            .where(CommissionEntry.id == entry.id, CommissionEntry.state == APPROVED)
            .values(state=PAID, paid_at=now, payout_id=payout.id)
            .execution_options(synchronize_session=False)
        ).rowcount  # type: ignore[attr-defined]
        if not moved:  # paid by a concurrent payout: this one rolls back whole
            raise RefusedError(409, "entry_not_approved", f"entry {entry.public_id} was paid meanwhile")
        session.add(
            CommissionTransition(
                entry_id=entry.id, from_state=APPROVED, to_state=PAID, at=now, payout_id=payout.id
            )
        )
    body = payout_body(payout, [e.public_id for e in entries])
    merchants = sorted({e.merchant_id for e in entries})
    outbox.publish(
        session,
        [
            outbox.DomainEvent(
                event_types.COMMISSION_PAID,
                merchant_id,
                {**body, "entry_ids": [e.public_id for e in entries if e.merchant_id == merchant_id]},
            )
            for merchant_id in merchants
        ],
    )
    return body


def record_payout(rt: runtime.Runtime, client_id: int, request: PayoutRequest) -> tuple[dict[str, Any], bool]:
    """Mark the payout's entries paid: (the payout's answer, whether it was recorded now)."""
    try:
        with rt.db.session() as session:
            found = _replay(session, client_id, request)
            if found is not None:
                return found, False
            entries = (
                _named(session, client_id, request)
                if request.entry_ids is not None
                else _up_to(session, client_id, request)
            )
            if not entries:
                raise RefusedError(
                    422, "nothing_to_pay", f"no approved entries of {request.creator_ref} to pay"
                )
            body = _pay(session, client_id, request, entries)
    except IntegrityError:  # the same payout recorded concurrently: answer it
        with rt.db.session() as session:
            found = _replay(session, client_id, request)
        if found is None:
            raise
        return found, False
    logger.info(
        "payout recorded",
        extra={"payout_id": body["id"], "entries": body["entry_count"], "total_minor": body["total_minor"]},
    )
    return body, True
