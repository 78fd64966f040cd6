"""Stories: a claim pauses the bot on its own platform, a resolve gives it back, failures show."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest

from storage import escalations
from tests.handoff.conftest import (
    ANA,
    BEN,
    T0,
    FakePlatforms,
    Running,
    message,
    stuck_customer,
)

# --- how each platform's conversation reaches us -------------------------------------------------


async def via_generic(running: Running, cid: str, platform: str) -> str:
    await running.post(stuck_customer(cid, platform))
    return cid


async def via_botpress(running: Running, cid: str) -> str:
    post = stuck_customer(cid)
    del post["platform"]  # Botpress posts say nothing of it: the connector names the platform
    body = json.dumps(post).encode()
    await running.post_raw(
        "botpress", body, {"Content-Type": "application/json", "x-bp-secret": "bp-secret"}
    )
    return cid


def sunshine_post(cid: str, *messages: tuple[str, str, str, bool]) -> dict[str, Any]:
    """A Sunshine Conversations v2 webhook post for app `app-5e1f`."""
    events = []
    for index, (message_id, author, text, fallback) in enumerate(messages):
        author_fields: dict[str, Any] = (
            {"type": "user", "userId": "sun-user-1", "displayName": "Rui"}
            if author == "user"
            else {"type": "business", "subtypes": ["AI"], "displayName": "Answer Bot"}
        )
        events.append(
            {
                "id": f"evt-{message_id}",
                "type": "conversation:message",
                "createdAt": f"2026-11-24T10:00:{index * 10:02d}.000Z",
                "payload": {
                    "conversation": {"id": cid, "type": "personal"},
                    "message": {
                        "id": message_id,
                        "received": f"2026-11-24T10:00:{index * 10:02d}.000Z",
                        "author": author_fields,
                        "content": {"type": "text", "text": text},
                        "metadata": {"fallback": True} if fallback else {},
                    },
                },
            }
        )
    return {"app": {"id": "app-5e1f"}, "webhook": {"id": "wh-1", "version": "v2"}, "events": events}


async def via_sunshine(running: Running, cid: str) -> str:
    post = sunshine_post(
        cid,
        ("s1", "user", "where is my refund for order #48213??", False),
        ("s2", "bot", "Sorry, I didn't get that.", True),
        ("s3", "user", "my refund for order 48213, where is it", False),
        ("s4", "bot", "Sorry, I didn't get that.", True),
        ("s5", "user", "this is useless. I want to talk to a real person now", False),
    )
    await running.post_raw(
        "sunshine",
        json.dumps(post).encode(),
        {"Content-Type": "application/json", "X-API-Key": "sunshine-webhook-secret"},
    )
    return cid


def chatwoot_message(number: int, message_id: int, incoming: bool, text: str, second: int) -> Any:
    """A Chatwoot agent bot `message_created` webhook for account 3."""
    return {
        "event": "message_created",
        "id": message_id,
        "content": text,
        "created_at": (T0.timestamp() + second),
        "message_type": "incoming" if incoming else "outgoing",
        "content_type": "text",
        "private": False,
        "sender": (
            {"id": 77, "name": "Rui", "email": "rui@example.com", "type": "contact"}
            if incoming
            else {"id": 9, "name": "Helpdesk Bot", "type": "agent_bot"}
        ),
        "account": {"id": 3, "name": "Acme"},
        "inbox": {"id": 12, "name": "Website"},
        "conversation": {
            "id": number,
            "inbox_id": 12,
            "status": "pending",
            "meta": {"sender": {"id": 77, "name": "Rui", "type": "contact"}},
        },
    }


async def via_chatwoot(running: Running) -> str:
    number = 41
    lines = [
        (True, "where is my refund for order #48213??"),
        (False, "Sorry, I didn't get that."),
        (True, "my refund for order 48213, where is it? I asked already"),
        (False, "Sorry, I didn't get that."),
        (True, "this is useless. I want to talk to a real person now"),
        (True, "a human please, now"),
    ]
    for index, (incoming, text) in enumerate(lines):
        body = json.dumps(chatwoot_message(number, 500 + index, incoming, text, index * 10))
        await running.post_raw(
            "chatwoot",
            body.encode(),
            {"Content-Type": "application/json"},
            token="chatwoot-webhook-secret",
        )
    return f"3:{number}"


INBOUND_SECRETS = {
    "ESCALATIONS_BOTPRESS_SECRET": "bp-secret",
    "ESCALATIONS_SUNSHINE_SECRET": "sunshine-webhook-secret",
    "ESCALATIONS_CHATWOOT_SECRET": "chatwoot-webhook-secret",
}


@pytest.fixture
async def service(
    make_service: Callable[..., AsyncIterator[Running]], platforms: FakePlatforms
) -> AsyncIterator[Running]:
    async for item in make_service(**platforms.env(), **INBOUND_SECRETS):
        yield item


# --- what each platform must receive -------------------------------------------------------------


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@dataclass(frozen=True)
class Expected:
    method: str
    path: str
    body: Any = None
    query: dict[str, str] | None = None
    auth: tuple[str, str] | None = None  # (header, value)


@dataclass(frozen=True)
class Case:
    arrive: Callable[[Running], Awaitable[str]]
    on_claim: list[Expected]
    on_resolve: list[Expected]


CASES: dict[str, Case] = {
    "rasa": Case(
        lambda r: via_generic(r, "rasa-sender-7", "rasa"),
        [
            Expected(
                "POST",
                "/conversations/rasa-sender-7/tracker/events",
                {"event": "pause"},
                {"token": "rasa-token", "include_events": "NONE"},
            )
        ],
        [
            Expected(
                "POST",
                "/conversations/rasa-sender-7/tracker/events",
                {"event": "resume"},
                {"token": "rasa-token", "include_events": "NONE"},
            )
        ],
    ),
    "sunshine": Case(
        lambda r: via_sunshine(r, "sun-conv-1"),
        [
            Expected(
                "POST",
                "/v2/apps/app-5e1f/conversations/sun-conv-1/passControl",
                {"switchboardIntegration": "zd:agentWorkspace", "metadata": {"claimedBy": "Ana"}},
                auth=("Authorization", basic("app_key_1", "sunshine-key-secret")),
            )
        ],
        [
            Expected(
                "POST",
                "/v2/apps/app-5e1f/conversations/sun-conv-1/passControl",
                {"switchboardIntegration": "answer-bot", "metadata": {"claimedBy": "Ana"}},
                auth=("Authorization", basic("app_key_1", "sunshine-key-secret")),
            )
        ],
    ),
    "intercom": Case(
        lambda r: via_generic(r, "215468913", "intercom"),
        [
            Expected(
                "POST",
                "/conversations/215468913/parts",
                {
                    "message_type": "assignment",
                    "type": "team",
                    "admin_id": "814860",
                    "assignee_id": "5017691",
                    "body": "Claimed by Ana.",
                },
                auth=("Authorization", "Bearer intercom-token"),
            )
        ],
        [
            Expected(
                "POST",
                "/conversations/215468913/parts",
                {
                    "message_type": "assignment",
                    "type": "admin",
                    "admin_id": "814860",
                    "assignee_id": "0",
                    "body": "Handed back to the bot.",
                },
                auth=("Authorization", "Bearer intercom-token"),
            )
        ],
    ),
    "liveperson": Case(
        lambda r: via_generic(r, "3ba8451d-2722", "liveperson"),
        [
            Expected(
                "PUT",
                "/v1/transferToSkill/account/63358097/conversation/3ba8451d-2722",
                query={"skillId": "1001"},
                auth=("Authorization", "Bearer liveperson-token"),
            )
        ],
        [
            Expected(
                "PUT",
                "/v1/transferToSkill/account/63358097/conversation/3ba8451d-2722",
                query={"skillId": "2002"},
                auth=("Authorization", "Bearer liveperson-token"),
            )
        ],
    ),
    "botpress": Case(
        lambda r: via_botpress(r, "bp-conv-3"),
        [
            Expected(
                "POST",
                "/api/v1/bots/support-bot/mod/hitl/channel/web/user/user-bp-conv-3/pause",
                auth=("Authorization", "Bearer botpress-token"),
            )
        ],
        [
            Expected(
                "POST",
                "/api/v1/bots/support-bot/mod/hitl/channel/web/user/user-bp-conv-3/unpause",
                auth=("Authorization", "Bearer botpress-token"),
            )
        ],
    ),
    "chatwoot": Case(
        via_chatwoot,
        [
            Expected(
                "POST",
                "/api/v1/accounts/3/conversations/41/toggle_status",
                {"status": "open"},
                auth=("api_access_token", "chatwoot-token"),
            ),
            Expected(
                "POST",
                "/api/v1/accounts/3/conversations/41/assignments",
                {"team_id": 4},
                auth=("api_access_token", "chatwoot-token"),
            ),
        ],
        [
            Expected(
                "POST",
                "/api/v1/accounts/3/conversations/41/toggle_status",
                {"status": "pending"},
                auth=("api_access_token", "chatwoot-token"),
            )
        ],
    ),
}


def check_calls(platforms: FakePlatforms, expected: list[Expected]) -> None:
    calls, platforms.calls[:] = list(platforms.calls), []
    assert [(c.method, c.path) for c in calls] == [(e.method, e.path) for e in expected]
    for call, wanted in zip(calls, expected, strict=True):
        assert call.body == wanted.body
        if wanted.query is not None:
            assert call.query == wanted.query
        if wanted.auth is not None:
            name, value = wanted.auth
            assert call.headers.get(name) == value


@pytest.mark.parametrize("platform", sorted(CASES))
async def test_claim_pauses_the_bot_on_its_platform_and_resolve_gives_it_back(
    service: Running, platforms: FakePlatforms, platform: str
) -> None:
    case = CASES[platform]
    conversation_id = await case.arrive(service)
    escalation = service.escalation(conversation_id)
    await service.deliver()
    assert platforms.calls == []  # nobody has claimed: the bot keeps talking

    claimed = await service.service.handoff.claim(escalation.id, ANA)
    assert claimed.ok
    await service.deliver()
    check_calls(platforms, case.on_claim)
    label = {"liveperson": "LivePerson", "botpress": "Botpress", "chatwoot": "Chatwoot"}.get(
        platform, platform.capitalize()
    )
    assert await service.card_notices(escalation.id) == (f"bot paused on {label}",)

    resolved = await service.service.handoff.resolve(escalation.id, ANA, "solved", None)
    assert resolved.ok
    await service.deliver()
    check_calls(platforms, case.on_resolve)
    assert await service.card_notices(escalation.id) == (f"bot resumed on {label}",)


async def test_platform_down_the_claim_still_succeeds_and_the_call_is_retried_and_shown(
    service: Running, platforms: FakePlatforms
) -> None:
    conversation_id = await via_sunshine(service, "sun-conv-down")
    escalation = service.escalation(conversation_id)
    platforms.fail_next(503, times=2)

    claimed = await service.service.handoff.claim(escalation.id, ANA)
    assert claimed.ok
    assert claimed.message.startswith("You have it")
    await service.deliver()
    assert len(platforms.calls) == 1
    assert service.escalation(conversation_id).status == "claimed"
    assert await service.card_notices(escalation.id) == (
        "bot still active: Sunshine answered 503, retrying",
    )

    service.clock.advance(seconds=1)  # the first backoff is at most one second
    await service.deliver()
    assert len(platforms.calls) == 2
    service.clock.advance(seconds=2)
    await service.deliver()
    assert len(platforms.calls) == 3
    assert await service.card_notices(escalation.id) == ("bot paused on Sunshine",)
    # The whole story stays in the hand-off log.
    assert service.notices(escalation.id) == [
        "bot still active: Sunshine answered 503, retrying",
        "bot still active: Sunshine answered 503, retrying",
        "bot paused on Sunshine",
    ]


async def test_a_rate_limited_call_waits_as_long_as_the_platform_asks(
    service: Running, platforms: FakePlatforms
) -> None:
    conversation_id = await via_generic(service, "215468914", "intercom")
    escalation = service.escalation(conversation_id)
    platforms.fail_next(429, headers={"Retry-After": "120"})

    await service.service.handoff.claim(escalation.id, ANA)
    await service.deliver()
    assert await service.card_notices(escalation.id) == (
        "bot still active: Intercom answered 429, retrying",
    )
    service.clock.advance(seconds=119)
    await service.deliver()
    assert len(platforms.calls) == 1
    service.clock.advance(seconds=1)
    await service.deliver()
    assert len(platforms.calls) == 2
    assert await service.card_notices(escalation.id) == ("bot paused on Intercom",)


async def test_refused_credentials_are_shown_and_not_retried(
    service: Running, platforms: FakePlatforms
) -> None:
    conversation_id = await via_generic(service, "3ba8451d-9999", "liveperson")
    escalation = service.escalation(conversation_id)
    platforms.fail_next(401)

    assert (await service.service.handoff.claim(escalation.id, ANA)).ok
    await service.deliver()
    service.clock.advance(minutes=30)
    await service.deliver()
    assert len(platforms.calls) == 1
    assert await service.card_notices(escalation.id) == (
        "bot still active: LivePerson answered 401, not retrying",
    )


async def test_a_claim_released_before_its_pause_went_out_leaves_the_bot_running(
    service: Running, platforms: FakePlatforms
) -> None:
    conversation_id = await via_generic(service, "rasa-sender-8", "rasa")
    escalation = service.escalation(conversation_id)

    assert (await service.service.handoff.claim(escalation.id, ANA)).ok
    assert (await service.service.handoff.release(escalation.id, ANA)).ok
    await service.deliver()
    # The stale pause is dropped; the bot is told (harmlessly) it is in charge.
    assert [c.body for c in platforms.calls] == [{"event": "resume"}]

    assert (await service.service.handoff.claim(escalation.id, BEN)).ok
    await service.deliver()
    assert [c.body for c in platforms.calls] == [{"event": "resume"}, {"event": "pause"}]


async def test_hand_back_to_bot_resolves_and_resumes_the_bot(
    service: Running, platforms: FakePlatforms
) -> None:
    conversation_id = await via_sunshine(service, "sun-conv-back")
    escalation = service.escalation(conversation_id)
    await service.service.handoff.claim(escalation.id, ANA)
    await service.deliver()

    result = await service.service.handoff.hand_back(escalation.id, ANA)
    assert result.ok
    assert result.message == "Handed back to the bot."
    await service.deliver()
    record = service.escalation(conversation_id)
    assert (record.status, record.outcome) == ("resolved", "handed_back")
    assert platforms.calls[-1].body == {
        "switchboardIntegration": "answer-bot",
        "metadata": {"claimedBy": "Ana"},
    }
    assert await service.card_notices(escalation.id) == ("bot resumed on Sunshine",)


async def test_a_team_that_keeps_the_bot_running_sends_no_platform_call(
    service: Running, platforms: FakePlatforms
) -> None:
    service.edit_rules(
        lambda text: text.replace("  support:\n", "  support:\n    pause_bot_on_claim: false\n", 1)
    )
    conversation_id = await via_generic(service, "rasa-sender-keep", "rasa")
    escalation = service.escalation(conversation_id)

    assert (await service.service.handoff.claim(escalation.id, ANA)).ok
    assert (await service.service.handoff.resolve(escalation.id, ANA, "solved", None)).ok
    await service.deliver()
    assert platforms.calls == []
    assert await service.card_notices(escalation.id) == ()


async def test_rules_edited_mid_escalation_leave_the_running_escalation_its_snapshot(
    service: Running, platforms: FakePlatforms
) -> None:
    before = service.escalation(await via_generic(service, "rasa-sender-9", "rasa"))
    service.edit_rules(
        lambda text: text.replace("  support:\n", "  support:\n    pause_bot_on_claim: false\n", 1)
    )
    after = service.escalation(await via_generic(service, "rasa-sender-10", "rasa"))
    assert before.snapshot["team_config"]["pause_bot_on_claim"] is True
    assert after.snapshot["team_config"]["pause_bot_on_claim"] is False

    await service.service.handoff.claim(before.id, ANA)
    await service.service.handoff.claim(after.id, BEN)
    await service.deliver()
    # Only the escalation opened under the old rules pauses its bot.
    assert [(c.path, c.body) for c in platforms.calls] == [
        ("/conversations/rasa-sender-9/tracker/events", {"event": "pause"})
    ]


async def test_a_claim_after_the_bot_recovered_is_refused_and_calls_nobody(
    service: Running, platforms: FakePlatforms
) -> None:
    escalation = service.escalation(await via_generic(service, "rasa-sender-11", "rasa"))
    with service.service.database.session() as session:
        assert escalations.close_unclaimed(
            session=session, escalation_id=escalation.id, status="recovered", now=service.clock()
        )

    result = await service.service.handoff.claim(escalation.id, ANA)
    assert not result.ok
    assert result.message == "Closed: the bot recovered before anyone claimed it."
    assert result.card is not None
    assert result.card.status == "recovered"
    await service.deliver()
    assert platforms.calls == []


async def test_a_claim_racing_the_bots_recovery_has_exactly_one_outcome(
    service: Running, platforms: FakePlatforms
) -> None:
    escalation = service.escalation(await via_generic(service, "rasa-sender-12", "rasa"))

    def recover() -> bool:
        with service.service.database.session() as session:
            return escalations.close_unclaimed(
                session=session,
                escalation_id=escalation.id,
                status="recovered",
                now=service.clock(),
            )

    claim, recovered = await asyncio.gather(
        service.service.handoff.claim(escalation.id, ANA), asyncio.to_thread(recover)
    )
    assert claim.ok != recovered
    await service.deliver()
    final = service.escalation("rasa-sender-12")
    if claim.ok:
        assert final.status == "claimed"
        assert [c.body for c in platforms.calls] == [{"event": "pause"}]
    else:
        assert final.status == "recovered"
        assert platforms.calls == []


async def test_without_credentials_the_card_says_the_bot_is_still_active(
    make_service: Callable[..., AsyncIterator[Running]], platforms: FakePlatforms
) -> None:
    async for running in make_service(**INBOUND_SECRETS):
        escalation = running.escalation(await via_sunshine(running, "sun-conv-nocreds"))
        assert (await running.service.handoff.claim(escalation.id, ANA)).ok
        await running.deliver()
        assert await running.card_notices(escalation.id) == (
            "bot still active: Sunshine calls are not configured (set "
            "ESCALATIONS_SUNSHINE_KEY_ID and ESCALATIONS_SUNSHINE_KEY_SECRET)",
        )
        assert platforms.calls == []


def chatwoot_signature(secret: str, timestamp: str, body: bytes) -> str:
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + digest.hexdigest()


async def test_a_signed_chatwoot_webhook_is_accepted_without_a_token(service: Running) -> None:
    body = json.dumps(chatwoot_message(52, 900, True, "hello", 0)).encode()
    headers = {
        "Content-Type": "application/json",
        "X-Chatwoot-Timestamp": "1795946400",
        "X-Chatwoot-Signature": chatwoot_signature("chatwoot-webhook-secret", "1795946400", body),
    }
    await service.post_raw("chatwoot", body, headers)
    forged = {**headers, "X-Chatwoot-Signature": chatwoot_signature("guess", "1795946400", body)}
    response = await service.client.post("/webhooks/chatwoot", data=body, headers=forged)
    assert response.status == 401


_ = message  # re-exported helper kept for stories that build events by hand
