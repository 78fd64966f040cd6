"""Botpress posts the generic format with its own shared-secret header."""

from __future__ import annotations

import json

import pytest

from connectors.base import BadSignature, InboundRequest
from connectors.registry import get_connector

BODY = json.dumps(
    {
        "conversation_id": "bp-7",
        "event": {
            "id": "m-1",
            "type": "message",
            "role": "customer",
            "text": "hi",
            "timestamp": "2026-11-24T10:00:00Z",
        },
    }
).encode()


def post(headers: dict[str, str]) -> InboundRequest:
    return InboundRequest(
        url="https://escalations.example.com/webhooks/botpress",
        headers=headers,
        body=BODY,
        content_type="application/json",
    )


def test_a_botpress_post_carrying_the_secret_is_accepted_and_marked_as_botpress() -> None:
    connector = get_connector("botpress")
    assert connector is not None

    connector.verify(post({"X-BP-Secret": "bp-secret"}), "bp-secret")
    [batch] = connector.parse(post({}))

    assert batch.meta.platform == "botpress"
    assert batch.conversation_id == "bp-7"
    assert connector.secret_env == "ESCALATIONS_BOTPRESS_SECRET"


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ({}, "missing x-bp-secret header"),
        ({"x-bp-secret": "guess"}, "x-bp-secret does not match the secret"),
    ],
)
def test_a_botpress_post_without_the_secret_is_refused(
    headers: dict[str, str], message: str
) -> None:
    connector = get_connector("botpress")
    assert connector is not None

    with pytest.raises(BadSignature) as caught:
        connector.verify(post(headers), "bp-secret")

    assert str(caught.value) == message
