"""Stories: a Dialogflow or Lex bot asks whether a human has the conversation before answering."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from tests.handoff.conftest import ANA, SECRET, FakePlatforms, Running, stuck_customer

STATUS_SECRET = "status-secret"


@pytest.fixture
async def service(
    make_service: Callable[..., AsyncIterator[Running]], platforms: FakePlatforms
) -> AsyncIterator[Running]:
    async for item in make_service(ESCALATIONS_STATUS_SECRET=STATUS_SECRET, **platforms.env()):
        yield item


async def status(running: Running, conversation_id: str, secret: str | None) -> tuple[int, Any]:
    headers = {} if secret is None else {"X-Escalations-Secret": secret}
    response = await running.client.get(
        f"/api/conversations/{conversation_id}/status", headers=headers
    )
    return response.status, await response.json()


async def test_the_bot_reads_handoff_true_while_an_agent_holds_the_conversation(
    service: Running, platforms: FakePlatforms
) -> None:
    await service.post(stuck_customer("df-session-1", "dialogflow-cx"))
    escalation = service.escalation("df-session-1")
    assert await status(service, "df-session-1", STATUS_SECRET) == (
        200,
        {
            "conversation_id": "df-session-1",
            "handoff": False,
            "claimed_by": None,
            "escalation": {
                "id": escalation.id,
                "status": "open",
                "team": "support",
                "opened_at": escalation.opened_at.isoformat(),
                "claimed_at": None,
            },
        },
    )

    await service.service.handoff.claim(escalation.id, ANA)
    code, answer = await status(service, "df-session-1", STATUS_SECRET)
    assert (code, answer["handoff"], answer["claimed_by"]) == (200, True, "Ana")
    assert answer["escalation"]["status"] == "claimed"
    await service.deliver()
    assert platforms.calls == []  # Dialogflow has no hand-off API: the endpoint is the signal
    assert await service.card_notices(escalation.id) == (
        "Dialogflow CX fulfillment reads handoff: true from the status endpoint",
    )

    await service.service.handoff.resolve(escalation.id, ANA, "solved", None)
    code, answer = await status(service, "df-session-1", STATUS_SECRET)
    assert (code, answer["handoff"], answer["escalation"]["status"]) == (200, False, "resolved")


async def test_a_conversation_never_seen_lets_the_bot_carry_on(service: Running) -> None:
    assert await status(service, "lex-unknown", STATUS_SECRET) == (
        200,
        {
            "conversation_id": "lex-unknown",
            "handoff": False,
            "claimed_by": None,
            "escalation": None,
        },
    )


@pytest.mark.parametrize(
    ("secret", "error"),
    [
        (None, "missing X-Escalations-Secret header"),
        ("guess", "X-Escalations-Secret does not match the secret"),
        (SECRET, "X-Escalations-Secret does not match the secret"),  # the status secret wins
    ],
)
async def test_nobody_without_the_secret_reads_a_conversations_status(
    service: Running, secret: str | None, error: str
) -> None:
    assert await status(service, "df-session-1", secret) == (401, {"error": error})


async def test_without_a_status_secret_the_webhook_secret_is_the_key(
    make_service: Callable[..., AsyncIterator[Running]],
) -> None:
    async for running in make_service():
        code, answer = await status(running, "df-session-2", SECRET)
        assert (code, answer["handoff"]) == (200, False)
