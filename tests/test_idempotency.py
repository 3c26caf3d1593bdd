"""A retried request with the same key returns the first answer and changes nothing more."""

from __future__ import annotations

import pytest

from queue_core.errors import Conflict, NotFound
from queue_core.models import WindowStatus
from tests.conftest import HallKit

pytestmark = pytest.mark.redis


async def seq(kit: HallKit) -> int:
    return (await kit.store.snapshot()).seq


async def test_issue_twice_with_one_key_is_one_ticket(hall: HallKit) -> None:
    first = await hall.store.issue("social-security", idempotency="k")
    again = await hall.store.issue("business-licence", idempotency="k")
    assert again.replayed and not first.replayed
    assert again.value.ticket.id == first.value.ticket.id
    assert again.value.ticket.number == "A001"
    assert again.outcomes == ()  # metrics do not count a replay
    assert await seq(hall) == 1


async def test_every_window_operation_replays(hall: HallKit) -> None:
    s = hall.store
    for _ in range(3):
        await s.issue("social-security")
    opened = await s.set_window("2", WindowStatus.OPEN, "open-1")
    assert (await s.set_window("2", WindowStatus.OPEN, "open-1")).replayed
    assert opened.value.status is WindowStatus.OPEN

    first = await s.call_next("2", "next-1")
    before = await seq(hall)
    again = await s.call_next("2", "next-1")
    assert again.replayed and again.value is not None and first.value is not None
    assert again.value.ticket.id == first.value.ticket.id
    assert await seq(hall) == before  # nobody else called, first ticket not completed

    recalled = await s.recall("2", "recall-1")
    assert (await s.recall("2", "recall-1")).value.ticket.id == recalled.value.ticket.id
    transferred = await s.transfer("2", "housing-fund", "transfer-1")
    before = await seq(hall)
    assert (await s.transfer("2", "housing-fund", "transfer-1")).replayed
    assert await seq(hall) == before
    assert transferred.value.ticket.service == "housing-fund"

    await s.call_next("2")
    done = await s.complete("2", "complete-1")
    assert (await s.complete("2", "complete-1")).value.ticket.id == done.value.ticket.id
    await s.call_next("2")
    gone = await s.no_show("2", "noshow-1")
    assert (await s.no_show("2", "noshow-1")).value.ticket.id == gone.value.ticket.id
    number = (await s.issue("social-security")).value.ticket.number
    out_of_turn = await s.call_number("2", number, "call-1")
    assert (await s.call_number("2", number, "call-1")).value.ticket.number == number
    assert out_of_turn.value.ticket.number == number


async def test_nothing_to_call_is_remembered_too(hall: HallKit) -> None:
    await hall.store.set_window("2", WindowStatus.OPEN)
    assert (await hall.store.call_next("2", "k")).value is None
    await hall.store.issue("social-security")
    retried = await hall.store.call_next("2", "k")
    assert retried.replayed and retried.value is None
    assert (await hall.store.call_next("2", "other")).value is not None


async def test_a_refused_request_stores_nothing(hall: HallKit) -> None:
    await hall.store.issue("social-security")
    with pytest.raises(Conflict):
        await hall.store.call_next("2", "k")  # window closed
    await hall.store.set_window("2", WindowStatus.OPEN)
    result = await hall.store.call_next("2", "k")
    assert not result.replayed and result.value is not None


async def test_keys_are_kept_24_hours(hall: HallKit) -> None:
    await hall.store.issue("social-security", idempotency="k")
    ttl = await hall.redis.ttl(hall.keys.idempotency("k"))
    assert 86_400 - 60 < ttl <= 86_400


async def test_a_retry_whose_ticket_was_archived_is_not_found(hall: HallKit) -> None:
    # The archive sweep may remove a finished ticket while its key (24 h) lives.
    first = await hall.store.issue("social-security", idempotency="k-archived")
    await hall.redis.hdel(hall.keys.tickets, first.value.ticket.id)
    before = await seq(hall)
    with pytest.raises(NotFound) as refused:
        await hall.store.issue("social-security", idempotency="k-archived")
    assert refused.value.code == "ticket_not_found"
    assert await seq(hall) == before  # nothing was issued again
