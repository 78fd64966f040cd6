"""Stories of the generic webhook: who may post, what is refused, nothing lost or doubled."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.app import stored_answer
from bot.pipeline import IngestResult
from connectors.generic import sign
from storage import conversations, escalations, outbox
from tests.bot.conftest import SECRET, Running, angry_conversation, conversation, message


def stored_events(running: Running, cid: str) -> list[str]:
    with running.service.database.session() as session:
        return [
            stored.event.event_id
            for stored in conversations.transcript(session=session, conversation_id=cid)
        ]


def all_escalations(running: Running) -> list[escalations.EscalationRecord]:
    with running.service.database.session() as session:
        return escalations.list_escalations(session=session, limit=100)


def pending_outbox(running: Running) -> list[outbox.OutboxItem]:
    with running.service.database.session() as session:
        return outbox.pending(session=session)


async def test_a_post_without_a_signature_is_refused_and_nothing_is_stored(
    running: Running,
) -> None:
    status, answer = await running.post(angry_conversation(), secret=None)
    assert status == 401
    assert answer == {"error": "missing X-Escalations-Signature header"}
    assert stored_events(running, "c-angry") == []


async def test_a_post_signed_with_another_secret_is_refused(running: Running) -> None:
    status, answer = await running.post(angry_conversation(), secret="not-the-secret")
    assert status == 401
    assert answer == {"error": "signature does not match the body"}
    assert stored_events(running, "c-angry") == []


async def test_without_a_configured_secret_the_endpoint_refuses_every_post(
    make_service: Callable[..., AsyncIterator[Running]],
) -> None:
    async for running in make_service(ESCALATIONS_WEBHOOK_SECRET=""):
        status, answer = await running.post(angry_conversation())
        assert status == 401
        assert answer == {
            "error": "this endpoint refuses posts until ESCALATIONS_WEBHOOK_SECRET is set "
            "on the service"
        }


async def test_malformed_json_gets_400_saying_where(running: Running) -> None:
    status, answer = await running.post(b'{"conversation_id": "c-1", "events": [')
    assert status == 400
    assert answer == {"error": "body is not valid JSON: Expecting value (line 1, column 39)"}


async def test_a_missing_field_gets_400_naming_the_field_and_nothing_is_half_stored(
    running: Running,
) -> None:
    post = conversation(
        "c-half",
        message("m1", "customer", "hello", 0),
        {"id": "m2", "type": "message", "role": "bot", "text": "hi"},  # no timestamp
    )
    status, answer = await running.post(post)
    assert status == 400
    assert answer == {"error": "events[1].timestamp: missing"}
    assert stored_events(running, "c-half") == []


async def test_a_body_over_the_limit_gets_413(
    make_service: Callable[..., AsyncIterator[Running]],
) -> None:
    async for running in make_service(ESCALATIONS_MAX_BODY_BYTES="2048"):
        big = conversation("c-big", message("m1", "customer", "x" * 4000, 0))
        status, answer = await running.post(big)
        assert status == 413
        assert answer == {"error": "body larger than the limit of 2048 bytes"}
        assert stored_events(running, "c-big") == []


async def _post_chunked(running: Running, body: bytes) -> tuple[int, dict[str, Any]]:
    """Post `body` in small chunks with no Content-Length (Transfer-Encoding: chunked)."""

    async def pieces() -> AsyncIterator[bytes]:
        for start in range(0, len(body), 500):
            yield body[start : start + 500]

    headers = {"Content-Type": "application/json", "X-Escalations-Signature": sign(SECRET, body)}
    response = await running.client.post("/webhooks/generic", data=pieces(), headers=headers)
    assert response.request_info.headers.get("Transfer-Encoding") == "chunked"
    return response.status, await response.json()


async def test_bodies_up_to_the_limit_are_taken_with_or_without_a_length(
    make_service: Callable[..., AsyncIterator[Running]],
) -> None:
    async for running in make_service(ESCALATIONS_MAX_BODY_BYTES="2048"):
        for cid, chunked in (("c-length", False), ("c-chunked", True)):
            post = conversation(cid, message("m1", "customer", "", 0))
            filler = 2048 - len(json.dumps(post).encode())
            post["events"][0]["text"] = "x" * filler
            body = json.dumps(post).encode()
            assert len(body) == 2048
            status, answer = await (_post_chunked(running, body) if chunked else running.post(body))
            assert (status, answer["stored"]) == (200, 1)
            assert stored_events(running, cid) == ["m1"]


async def test_a_chunked_body_over_the_limit_gets_413(
    make_service: Callable[..., AsyncIterator[Running]],
) -> None:
    async for running in make_service(ESCALATIONS_MAX_BODY_BYTES="2048"):
        big = conversation("c-big", message("m1", "customer", "x" * 4000, 0))
        status, answer = await _post_chunked(running, json.dumps(big).encode())
        assert status == 413
        assert answer == {"error": "body larger than the limit of 2048 bytes"}
        assert stored_events(running, "c-big") == []


async def test_an_unknown_platform_gets_404_listing_the_known_ones(running: Running) -> None:
    status, answer = await running.post(angry_conversation(), name="nosuchbot")
    assert status == 404
    assert answer["error"].startswith("no connector named 'nosuchbot'; known: ")
    assert "generic" in answer["error"]


async def test_a_retried_post_changes_nothing(running: Running) -> None:
    post = angry_conversation()
    first_status, first = await running.post(post)
    second_status, second = await running.post(post)
    assert (first_status, second_status) == (200, 200)
    assert (first["stored"], first["duplicates"]) == (5, 0)
    assert (second["stored"], second["duplicates"]) == (0, 5)
    assert stored_events(running, "c-angry") == ["m1", "m2", "m3", "m4", "m5"]
    assert len(all_escalations(running)) == 1
    assert [item.kind for item in pending_outbox(running)] == ["post_card"]


async def test_one_event_per_post_gives_the_same_escalation_as_one_batch(
    running: Running,
) -> None:
    batch = angry_conversation("c-batch")
    await running.post(batch)
    single = angry_conversation("c-single")
    for event in single["events"]:
        status, _ = await running.post({**single, "events": [event]})
        assert status == 200
    by_conversation = {e.conversation_id: e for e in all_escalations(running)}
    assert set(by_conversation) == {"c-batch", "c-single"}
    assert by_conversation["c-batch"].level == by_conversation["c-single"].level
    assert by_conversation["c-batch"].score == pytest.approx(by_conversation["c-single"].score)
    assert by_conversation["c-batch"].opened_at_event_id == "m4"
    assert by_conversation["c-single"].opened_at_event_id == "m4"


async def test_out_of_order_events_are_stored_in_time_order(running: Running) -> None:
    events = angry_conversation()["events"]
    late_first = conversation("c-order", events[2], events[3])
    status, _ = await running.post(late_first)
    assert status == 200
    status, _ = await running.post(conversation("c-order", events[0], events[1], events[4]))
    assert status == 200
    assert stored_events(running, "c-order") == ["m1", "m2", "m3", "m4", "m5"]


@settings(max_examples=200, deadline=None)
@given(
    received=st.integers(0, 10**6),
    stored=st.integers(0, 10**6),
    duplicates=st.integers(0, 10**6),
    opened=st.lists(st.integers(1, 2**62), max_size=3),
)
def test_the_stored_answer_is_the_text_json_dumps_writes(
    received: int, stored: int, duplicates: int, opened: list[int]
) -> None:
    result = IngestResult(
        events_received=received, events_stored=stored, duplicates=duplicates, opened=opened
    )
    expected = {
        "status": "stored",
        "events": received,
        "stored": stored,
        "duplicates": duplicates,
        "escalations_opened": opened,
    }
    assert stored_answer(result) == json.dumps(expected)


async def test_a_stored_post_is_answered_as_json(running: Running) -> None:
    body = json.dumps(conversation("c-answer", message("m1", "customer", "hello", 0))).encode()
    headers = {"Content-Type": "application/json", "X-Escalations-Signature": sign(SECRET, body)}
    response = await running.client.post("/webhooks/generic", data=body, headers=headers)

    assert response.status == 200
    assert response.headers["Content-Type"] == "application/json; charset=utf-8"
    assert await response.json() == {
        "status": "stored",
        "events": 1,
        "stored": 1,
        "duplicates": 0,
        "escalations_opened": [],
    }
