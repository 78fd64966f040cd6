"""Outbound hand-off clients: tell a chatbot platform that a human has the conversation, or not.

One small client per platform with a hand-off API. Each is configured from its own environment
variables and is off (absent from `clients_from_env`) until they are set; docs/handoff.md lists
them. Dialogflow and Lex have no such API: their fulfillment code reads the status endpoint.
"""

from __future__ import annotations

from collections.abc import Mapping

from connectors.outbound.base import (
    Forbidden,
    HandoffTarget,
    NotFound,
    PlatformCallError,
    PlatformClient,
    RateLimited,
    Unavailable,
)
from connectors.outbound.botpress import BotpressClient
from connectors.outbound.chatwoot import ChatwootClient
from connectors.outbound.intercom import IntercomClient
from connectors.outbound.liveperson import LivePersonClient
from connectors.outbound.rasa import RasaClient
from connectors.outbound.sunshine import SunshineClient

__all__ = [
    "PLATFORM_LABELS",
    "SETTINGS_HINT",
    "Forbidden",
    "HandoffTarget",
    "NotFound",
    "PlatformCallError",
    "PlatformClient",
    "RateLimited",
    "Unavailable",
    "clients_from_env",
]

# Platforms with a hand-off API, as cards name them.
PLATFORM_LABELS: Mapping[str, str] = {
    "rasa": "Rasa",
    "sunshine": "Sunshine",
    "intercom": "Intercom",
    "liveperson": "LivePerson",
    "botpress": "Botpress",
    "chatwoot": "Chatwoot",
}
# The variables that switch each client on (the rest are optional), for "not configured" notices.
SETTINGS_HINT: Mapping[str, str] = {
    "rasa": "ESCALATIONS_RASA_API_URL and ESCALATIONS_RASA_API_TOKEN",
    "sunshine": "ESCALATIONS_SUNSHINE_KEY_ID and ESCALATIONS_SUNSHINE_KEY_SECRET",
    "intercom": "ESCALATIONS_INTERCOM_TOKEN and ESCALATIONS_INTERCOM_ADMIN_ID",
    "liveperson": "ESCALATIONS_LIVEPERSON_API_URL, _ACCOUNT_ID, _TOKEN, _AGENT_SKILL_ID "
    "and _BOT_SKILL_ID",
    "botpress": "ESCALATIONS_BOTPRESS_API_URL, _TOKEN and _BOT_ID",
    "chatwoot": "ESCALATIONS_CHATWOOT_TOKEN",
}


def clients_from_env(environ: Mapping[str, str]) -> dict[str, PlatformClient]:
    """Every client whose settings are present, by platform name."""
    candidates: list[PlatformClient | None] = [
        RasaClient.from_env(environ),
        SunshineClient.from_env(environ),
        IntercomClient.from_env(environ),
        LivePersonClient.from_env(environ),
        BotpressClient.from_env(environ),
        ChatwootClient.from_env(environ),
    ]
    return {client.platform: client for client in candidates if client is not None}
