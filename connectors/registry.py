"""Every connector, by the URL segment it answers on: POST /webhooks/<name>."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from connectors.base import Connector
from connectors.botframework import BotFrameworkConnector
from connectors.botpress import BotpressConnector
from connectors.chatwoot import ChatwootConnector
from connectors.dialogflow_cx import DialogflowCXConnector
from connectors.dialogflow_es import DialogflowESConnector
from connectors.generic import GenericConnector
from connectors.intercom import IntercomConnector
from connectors.lex import LexV2Connector
from connectors.liveperson import LivePersonConnector
from connectors.rasa import RasaConnector
from connectors.sunshine import SunshineConnector
from connectors.twilio import TwilioConversationsConnector

_ALL: tuple[Connector, ...] = (
    GenericConnector(),
    BotpressConnector(),
    SunshineConnector(),
    IntercomConnector(),
    RasaConnector(),
    DialogflowCXConnector(),
    DialogflowESConnector(),
    LexV2Connector(),
    LivePersonConnector(),
    TwilioConversationsConnector(),
    BotFrameworkConnector(),
    ChatwootConnector(),
)

CONNECTORS: Mapping[str, Connector] = MappingProxyType({c.name: c for c in _ALL})


def get_connector(name: str) -> Connector | None:
    """The connector answering on /webhooks/<name>, or None when there is none."""
    return CONNECTORS.get(name)
