"""Render the neutral escalation `Card` as an Adaptive Card for Teams (pure; no SDK imports)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bot.cards import RESOLVE_OUTCOMES, Card, CardAction, CardStatus, format_wait, outcome_label

# 1.4 is the first version with Action.Execute (Universal Actions); Teams renders up to 1.5.
ADAPTIVE_CARD_VERSION = "1.5"
ADAPTIVE_CARD_CONTENT_TYPE = "application/vnd.microsoft.card.adaptive"

OUTCOME_INPUT_ID = "outcome"
NOTE_INPUT_ID = "note"

_STATUS_TEXT = {
    CardStatus.OPEN: "Open — waiting for an agent",
    CardStatus.CLAIMED: "Claimed",
    CardStatus.RESOLVED: "Resolved",
    CardStatus.EXPIRED: "Expired — the conversation ended before anyone claimed it",
    CardStatus.RECOVERED: "Recovered — the bot got the conversation back on track",
}
_STATUS_COLOR = {
    CardStatus.OPEN: "attention",
    CardStatus.CLAIMED: "warning",
    CardStatus.RESOLVED: "good",
    CardStatus.EXPIRED: "default",
    CardStatus.RECOVERED: "good",
}
_RECENT_LIMIT = 5
_TEXT_LIMIT = 300


def _clip(text: str, limit: int = _TEXT_LIMIT) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _time(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def _text(text: str, **style: Any) -> dict[str, Any]:
    return {"type": "TextBlock", "text": text, "wrap": True, **style}


def _section(title: str, lines: list[str]) -> list[dict[str, Any]]:
    if not lines:
        return []
    return [
        _text(title, weight="Bolder", spacing="Medium", separator=True),
        _text("\n".join(f"- {line}" for line in lines)),
    ]


def status_line(card: Card) -> str:
    """One sentence saying who has the escalation and how long the customer waited."""
    if card.status is CardStatus.CLAIMED and card.claimed_by and card.claimed_at:
        waited = format_wait((card.claimed_at - card.opened_at).total_seconds())
        return (
            f"Claimed by {card.claimed_by} at {_time(card.claimed_at)}; "
            f"the customer waited {waited}"
        )
    if card.status is CardStatus.RESOLVED:
        who = f" by {card.closed_by}" if card.closed_by else ""
        when = f" at {_time(card.closed_at)}" if card.closed_at else ""
        return f"Resolved{who}{when}: {outcome_label(card.outcome)}"
    return _STATUS_TEXT[card.status]


# Mention targets that mean "everyone here" on some surface; Teams has no such mention for bots.
_GROUP_CALLS = {"@here", "here", "@channel", "channel", "@everyone", "<!here>", "<!channel>"}
_GUID = re.compile(r"[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}")
_UPN = re.compile(r"[^@\s<>]+@[^@\s<>]+\.[^@\s<>]+")
_TEAMS_USER = re.compile(r"29:[\w-]+")
_NAMED = re.compile(r"(?P<name>[^<>]+?)\s*<(?P<id>[^<>]+)>")
_TAG_PREFIX = "tag:"


@dataclass(frozen=True, slots=True)
class TeamsMention:
    """How a card calls someone in Teams: the text it shows and the mention entity, if any."""

    text: str
    entity: dict[str, Any] | None


def teams_mention(target: str) -> TeamsMention | None:
    """How Teams can call `target`, or None when it names nothing Teams knows.

    - a user: an AAD object id, a UPN ("ana@contoso.com") or a Teams user id ("29:..."),
      optionally with a display name: "Ana Lima <ana@contoso.com>";
    - a Teams tag: "tag:<tag id>" or "On call <tag:<tag id>>";
    - "@here", "@channel": Teams gives bots no channel-wide mention, so the card says so in
      words (the new card is a new channel post, which already notifies the channel's followers);
    - Slack-only forms ("<!subteam^S...>", "U..." ids) name nothing in Teams: None.
    """
    name = target.strip()
    if name.lower() in _GROUP_CALLS:
        return TeamsMention("**Everyone in this channel:** this needs an agent now", None)
    display: str | None = None
    named = _NAMED.fullmatch(name)
    if named:
        display, name = named["name"].strip(), named["id"].strip()
    if name.lower().startswith(_TAG_PREFIX):
        tag_id = name[len(_TAG_PREFIX) :].strip()
        if not tag_id:
            return None
        return _entity_mention(display or "tag", {"id": tag_id, "type": "tag"})
    if _GUID.fullmatch(name) or _UPN.fullmatch(name) or _TEAMS_USER.fullmatch(name):
        return _entity_mention(display or name, {"id": name})
    return None


def _entity_mention(display: str, mentioned: dict[str, str]) -> TeamsMention:
    # Teams matches the entity to the text by the exact "<at>...</at>" string.
    tag = f"<at>{display}</at>"
    entity = {"type": "mention", "text": tag, "mentioned": {**mentioned, "name": display}}
    return TeamsMention(f"{tag}: this needs an agent now", entity)


def _execute(title: str, action: CardAction, card: Card, **extra: Any) -> dict[str, Any]:
    return {
        "type": "Action.Execute",
        "title": title,
        "verb": action.value,
        "data": {"escalation_id": card.escalation_id},
        **extra,
    }


def _resolve_form(card: Card) -> dict[str, Any]:
    form = {
        "type": "AdaptiveCard",
        "body": [
            {
                "type": "Input.ChoiceSet",
                "id": OUTCOME_INPUT_ID,
                "label": "Outcome",
                "isRequired": True,
                "errorMessage": "Pick an outcome",
                "value": RESOLVE_OUTCOMES[0][0],
                "choices": [{"title": title, "value": value} for value, title in RESOLVE_OUTCOMES],
            },
            {
                "type": "Input.Text",
                "id": NOTE_INPUT_ID,
                "label": "Note",
                "isMultiline": True,
                "maxLength": 1000,
                "placeholder": "What was done, what the customer was told",
            },
        ],
        "actions": [_execute("Resolve", CardAction.RESOLVE, card, style="positive")],
    }
    return {"type": "Action.ShowCard", "title": "Resolve", "card": form}


def _actions(card: Card) -> list[dict[str, Any]]:
    actions: list[dict[str, Any]] = []
    for action in card.actions:
        if action is CardAction.CLAIM:
            actions.append(_execute("Claim", action, card, style="positive"))
        elif action is CardAction.STILL_ON_IT:
            actions.append(_execute("Still on it", action, card, style="positive"))
        elif action is CardAction.RELEASE:
            actions.append(_execute("Release", action, card))
        elif action is CardAction.HAND_BACK:
            actions.append(_execute("Hand back to bot", action, card))
        elif action is CardAction.RESOLVE:
            actions.append(_resolve_form(card))
        elif action is CardAction.OPEN_TRANSCRIPT and card.transcript_url:
            actions.append(
                {"type": "Action.OpenUrl", "title": "Open transcript", "url": card.transcript_url}
            )
    if card.platform_url:
        actions.append(
            {"type": "Action.OpenUrl", "title": "Open in platform", "url": card.platform_url}
        )
    return actions


def render_adaptive_card(card: Card) -> dict[str, Any]:
    """The Adaptive Card (as JSON-ready dict) for an escalation in its current state."""
    customer = card.customer_name or "Unknown customer"
    if card.customer_tier:
        customer = f"{customer} ({card.customer_tier})"
    summary = card.summary
    facts = [
        {"title": "Customer", "value": customer},
        {"title": "Team", "value": card.team},
        {"title": "Platform", "value": card.platform},
        {"title": "Score", "value": f"{card.score:g}"},
        {"title": "Opened", "value": _time(card.opened_at)},
        {"title": "Turns", "value": str(summary.turns)},
    ]
    mention = (
        teams_mention(card.mention) if card.mention and card.status is CardStatus.OPEN else None
    )
    body: list[dict[str, Any]] = [_text(mention.text, weight="Bolder")] if mention else []
    body += [
        _text(
            f"{card.level.upper()} escalation #{card.escalation_id} — {customer}",
            size="Large",
            weight="Bolder",
        ),
        _text(status_line(card), color=_STATUS_COLOR[card.status], weight="Bolder"),
        {"type": "FactSet", "facts": facts},
    ]
    body += _section("Why it escalated", list(card.reasons))
    body += _section("The customer wants", [_clip(line) for line in summary.wants])
    body += _section("The bot tried", [_clip(line) for line in summary.bot_tried])
    body += _section("Identifiers", list(summary.identifiers))
    if summary.recent:
        body.append(_text("Recent messages", weight="Bolder", spacing="Medium", separator=True))
        for message in summary.recent[-_RECENT_LIMIT:]:
            speaker = message.role.value.capitalize()
            body.append(_text(f"**{speaker}** {message.timestamp:%H:%M}: {_clip(message.text)}"))
    if card.status is CardStatus.RESOLVED and card.note:
        body += _section("Resolution note", [_clip(card.note, 1000)])
    body += [_text(notice, isSubtle=True, size="Small") for notice in card.notices]
    rendered: dict[str, Any] = {
        "type": "AdaptiveCard",
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "version": ADAPTIVE_CARD_VERSION,
        "fallbackText": f"{card.level} escalation #{card.escalation_id}: {status_line(card)}",
        "body": body,
        "actions": _actions(card),
    }
    if mention is not None and mention.entity is not None:
        # Teams' host extension: the mention entities of the card's text.
        rendered["msteams"] = {"entities": [mention.entity]}
    return rendered
