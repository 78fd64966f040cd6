"""Activities shaped like the ones Teams posts to a bot's `/api/messages`."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

TENANT = "72f988bf-0000-0000-0000-000000000001"
BOT = {"id": "28:escalations-bot", "name": "Escalations"}
TEAM = {"id": "19:support-general@thread.tacv2", "name": "Support", "aadGroupId": "aad-team-1"}
GENERAL_CHANNEL = "19:support-general@thread.tacv2"
ESCALATIONS_CHANNEL = "19:support-escalations@thread.tacv2"
_ids = itertools.count(1)


@dataclass(frozen=True)
class TeamsUser:
    """Someone in the tenant."""

    id: str
    name: str
    aad_object_id: str

    def account(self) -> dict[str, Any]:
        """The `from` of an activity this user caused."""
        return {"id": self.id, "name": self.name, "aadObjectId": self.aad_object_id}


ANA = TeamsUser("29:ana", "Ana Lima", "aad-ana")
BEN = TeamsUser("29:ben", "Ben Okafor", "aad-ben")
LEAD = TeamsUser("29:lead", "Lee Admin", "aad-lead")


def _base(service_url: str, user: TeamsUser, conversation: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": f"activity-{next(_ids)}",
        "channelId": "msteams",
        "serviceUrl": service_url,
        "timestamp": "2026-03-02T10:00:00.000Z",
        "from": user.account(),
        "recipient": dict(BOT),
        "conversation": conversation,
    }


def _channel_conversation(channel: str, thread_of: str | None = None) -> dict[str, Any]:
    conversation_id = f"{channel};messageid={thread_of}" if thread_of else channel
    return {
        "id": conversation_id,
        "conversationType": "channel",
        "isGroup": True,
        "tenantId": TENANT,
    }


def _channel_data(channel: str, channel_name: str | None, **extra: Any) -> dict[str, Any]:
    channel_info: dict[str, Any] = {"id": channel}
    if channel_name:
        channel_info["name"] = channel_name
    return {"team": dict(TEAM), "channel": channel_info, "tenant": {"id": TENANT}, **extra}


def installed_in_team(service_url: str, by: TeamsUser = LEAD) -> dict[str, Any]:
    """Teams tells the bot it was added to a team (it speaks in the General channel)."""
    return {
        **_base(service_url, by, _channel_conversation(GENERAL_CHANNEL)),
        "type": "installationUpdate",
        "action": "add",
        "channelData": _channel_data(GENERAL_CHANNEL, None, settings={"selectedChannel": {}}),
    }


def bot_added_to_team(service_url: str, by: TeamsUser = LEAD) -> dict[str, Any]:
    """The conversationUpdate Teams sends alongside an installation."""
    return {
        **_base(service_url, by, _channel_conversation(GENERAL_CHANNEL)),
        "type": "conversationUpdate",
        "membersAdded": [{"id": BOT["id"]}],
        "channelData": _channel_data(GENERAL_CHANNEL, None, eventType="teamMemberAdded"),
    }


def mention_in_channel(
    service_url: str, channel: str, channel_name: str, text: str, by: TeamsUser = ANA
) -> dict[str, Any]:
    """Someone @mentions the bot in a channel."""
    return {
        **_base(service_url, by, _channel_conversation(channel, thread_of="1700000000000")),
        "type": "message",
        "text": f"<at>Escalations</at> {text}",
        "channelData": _channel_data(channel, channel_name),
    }


def personal_message(service_url: str, text: str, by: TeamsUser = ANA) -> dict[str, Any]:
    """A message in the personal chat between a user and the bot."""
    conversation = {"id": f"a:personal-{by.id}", "conversationType": "personal", "tenantId": TENANT}
    return {
        **_base(service_url, by, conversation),
        "type": "message",
        "text": text,
        "channelData": {"tenant": {"id": TENANT}},
    }


def card_click(
    service_url: str,
    by: TeamsUser,
    verb: str,
    escalation_id: int,
    message_id: str,
    channel: str = ESCALATIONS_CHANNEL,
    inputs: dict[str, str] | None = None,
) -> dict[str, Any]:
    """An Action.Execute click on a card: the adaptiveCard/action invoke."""
    data: dict[str, Any] = {"escalation_id": escalation_id, **(inputs or {})}
    return {
        **_base(service_url, by, _channel_conversation(channel, thread_of=message_id)),
        "type": "invoke",
        "name": "adaptiveCard/action",
        "replyToId": message_id,
        "value": {
            "action": {"type": "Action.Execute", "verb": verb, "data": data},
            "trigger": "manual",
        },
        "channelData": _channel_data(channel, "Escalations"),
    }
