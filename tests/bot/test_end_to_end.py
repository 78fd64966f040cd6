"""From an HTTP post to a card on a surface, through the real pipeline, database and worker."""

from __future__ import annotations

from storage import escalations, outbox
from tests.bot.conftest import Running, angry_conversation, conversation, message


async def test_an_angry_customer_becomes_one_card_with_the_reasons(running: Running) -> None:
    status, answer = await running.post(angry_conversation())
    assert status == 200
    assert len(answer["escalations_opened"]) == 1
    escalation_id = answer["escalations_opened"][0]

    with running.service.database.session() as session:
        record = escalations.get_escalation(session=session, escalation_id=escalation_id)
        pending = outbox.pending(session=session)
    assert record is not None
    assert record.status == "open"
    assert record.conversation_id == "c-angry"
    assert record.team == "support"
    assert any(reason.signal == "human_request" for reason in record.reasons)
    assert [(item.kind, item.surface, item.payload) for item in pending] == [
        ("post_card", "console", {"channel": "support"})
    ]

    delivered = await running.service.delivery.run_once()
    assert delivered == 1
    shown = running.console.getvalue()
    assert f"escalation #{escalation_id}" in shown
    assert "Customer: Ana (standard) · conversation c-angry" in shown
    assert "Transcript: https://escalations.example.com/conversations/c-angry" in shown
    with running.service.database.session() as session:
        assert outbox.pending(session=session) == []
        messages = escalations.card_messages(session=session, escalation_id=escalation_id)
    assert [(m.surface, m.channel) for m in messages] == [("console", "support")]

    # Nothing more to deliver: a second round posts nothing twice.
    assert await running.service.delivery.run_once() == 0
    assert running.console.getvalue().count(f"escalation #{escalation_id}") == 1


async def test_new_customer_messages_go_to_the_cards_thread_coalesced(running: Running) -> None:
    await running.post(angry_conversation())
    await running.service.delivery.run_once()
    await running.post(
        conversation(
            "c-angry",
            message("m6", "customer", "hello??", 60),
            message("m7", "customer", "my email is ana@example.com", 61),
        )
    )
    await running.service.delivery.run_once()
    shown = running.console.getvalue()
    assert "Customer (10:01): hello??\nCustomer (10:01): my email is [email]" in shown


async def test_a_happy_conversation_raises_nothing(running: Running) -> None:
    status, answer = await running.post(
        conversation(
            "c-happy",
            message("h1", "customer", "when does my parcel arrive?", 0),
            message("h2", "bot", "Parcel 7731 arrives today before 6pm.", 2, intent="eta"),
            message("h3", "customer", "great, thanks!", 10),
        )
    )
    assert status == 200
    assert answer["escalations_opened"] == []
    assert await running.service.delivery.run_once() == 0


async def test_metrics_count_what_was_ingested_opened_and_delivered(running: Running) -> None:
    await running.post(angry_conversation())
    await running.post(angry_conversation())  # a platform retry: counted as duplicates
    await running.service.delivery.run_once()

    response = await running.client.get("/metrics")
    assert response.status == 200
    text = await response.text()
    lines = set(text.splitlines())
    assert 'escalations_events_ingested_total{platform="generic"} 5' in lines
    assert "escalations_events_duplicate_total 5" in lines
    # Opened at the second failed answer (escalate), upgraded later: counted at its opening level.
    assert 'escalations_opened_total{level="escalate"} 1' in lines
    assert (
        'escalations_deliveries_total{surface="console",kind="post_card",outcome="delivered"} 1'
        in lines
    )
    assert "escalations_outbox_depth 0" in lines


async def test_a_batch_of_customer_messages_is_one_queued_thread_message(
    running: Running,
) -> None:
    await running.post(angry_conversation())
    await running.service.delivery.run_once()
    await running.post(
        conversation(
            "c-angry",
            message("m6", "customer", "hello??", 60),
            message("m7", "customer", "anyone", 61),
            message("m8", "customer", "still here", 62),
        )
    )
    with running.service.database.session() as session:
        queued = [item for item in outbox.pending(session=session) if item.kind == "thread_reply"]
    assert [(item.surface, len(item.payload["messages"])) for item in queued] == [("console", 3)]

    await running.service.delivery.run_once()
    assert running.console.getvalue().count("[thread of ") == 1
