"""The hand-off summary an agent reads, and the personal data it must not leak."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from engine import SummaryMessage, redact, summarize
from engine.events import Role
from engine.rules import Redaction
from tests.engine.engine_factory import Chat, make_rules


def at(minute: int, second: int) -> datetime:
    return datetime(2026, 3, 2, 10, minute, second, tzinfo=UTC)


def lost_parcel(chat: Chat) -> None:
    chat.customer("hi")
    chat.bot("Hello! How can I help you today?", intent="welcome")
    chat.customer(
        "My order #48213 never arrived. Email me at ann.lee@example.com or call +49 170 1234567"
    )
    chat.bot("Sorry, I didn't get that.", intent="Default Fallback Intent")
    chat.customer("I paid with card 4111 1111 1111 1111 and want a refund for order 48213")
    chat.bot("Refunds take 5-7 business days after we receive the return.", intent="refund_policy")
    chat.customer("ticket TCK-2231 says it was lost")
    chat.bot("Let me check the shipping status.", intent="order_status")
    chat.customer("agent please")


def test_the_summary_tells_the_agent_what_the_customer_wants_without_personal_data() -> None:
    chat = Chat()
    lost_parcel(chat)

    summary = summarize(chat.state, chat.rules)

    assert summary.wants == (
        "My order #48213 never arrived. Email me at [email] or call [phone]",
        "I paid with card [card] and want a refund for order 48213",
    )
    assert summary.bot_tried == ("welcome", "refund_policy", "order_status")
    assert summary.identifiers == ("#48213", "[email]", "[phone]", "TCK-2231")
    assert summary.recent == (
        SummaryMessage(Role.BOT, "Sorry, I didn't get that.", at(2, 0), "e4"),
        SummaryMessage(
            Role.CUSTOMER,
            "I paid with card [card] and want a refund for order 48213",
            at(2, 30),
            "e5",
        ),
        SummaryMessage(
            Role.BOT, "Refunds take 5-7 business days after we receive the return.", at(3, 0), "e6"
        ),
        SummaryMessage(Role.CUSTOMER, "ticket TCK-2231 says it was lost", at(3, 30), "e7"),
        SummaryMessage(Role.BOT, "Let me check the shipping status.", at(4, 0), "e8"),
        SummaryMessage(Role.CUSTOMER, "agent please", at(4, 30), "e9"),
    )
    assert (summary.turns, summary.started_at, summary.last_at) == (9, at(0, 30), at(4, 30))
    assert len(summary.sentiment_trend) == 5


def test_without_redaction_the_summary_keeps_the_customers_details() -> None:
    chat = Chat(make_rules(redaction=Redaction(enabled=False)))
    lost_parcel(chat)

    summary = summarize(chat.state, chat.rules)

    assert summary.identifiers == ("#48213", "ann.lee@example.com", "+49 170 1234567", "TCK-2231")


def test_the_sentiment_trend_keeps_only_the_latest_values() -> None:
    chat = Chat()
    for number in range(30):
        chat.customer(f"message {number} is fine")

    assert len(summarize(chat.state, chat.rules).sentiment_trend) == 12


ALL_KINDS = ("email", "phone", "card", "iban")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("mail jane.doe+shop@example.co.uk today", "mail [email] today"),
        ("call +49 170 1234567 or (555) 123-4567", "call [phone] or [phone]"),
        ("card 4111 1111 1111 1111 exp 12/27", "card [card] exp 12/27"),
        ("card 4111-1111-1111-1111", "card [card]"),
        ("not a card 4111 1111 1111 1112", "not a card 4111 1111 1111 1112"),
        ("IBAN DE89 3704 0044 0532 0130 00 thanks", "IBAN [iban] thanks"),
        ("GB82WEST12345698765432", "[iban]"),
        ("order #12345678 and order 12345", "order #12345678 and order 12345"),
        ("delivered on 2026-03-02 at 10:30", "delivered on 2026-03-02 at 10:30"),
        ("no personal data here", "no personal data here"),
    ],
)
def test_personal_data_is_replaced_by_placeholders(text: str, expected: str) -> None:
    assert redact(text, ALL_KINDS) == expected


def test_only_the_configured_kinds_are_redacted() -> None:
    text = "ann@example.com, +49 170 1234567"

    assert redact(text, ("phone",)) == "ann@example.com, [phone]"
