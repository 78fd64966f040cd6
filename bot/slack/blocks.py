"""Block Kit rendering: the neutral Card, lists and modals as Slack message and view payloads.

Everything here is pure (no I/O, no clock reads), and every payload stays inside Slack's limits:
long text is cut with a visible "…" rather than rejected by the API.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bot.cards import (
    RESOLVE_OUTCOMES,
    Card,
    CardAction,
    CardStatus,
    format_wait,
    outcome_label,
)
from bot.handoff import QueueStats
from engine.events import Role

Block = dict[str, Any]

ELLIPSIS = "…"
MAX_MESSAGE_BLOCKS = 50
MAX_VIEW_BLOCKS = 100
MAX_TEXT = 3000  # section text, context text, message `text` we send
MAX_HEADER = 150
MAX_BUTTON_TEXT = 75
MAX_BUTTON_VALUE = 2000
MAX_OPTION_TEXT = 75
MAX_MESSAGE_LINE = 600  # one customer/bot message on the card, so several fit in a section

OPEN_PLATFORM_ACTION = "escalation_open_platform"
RESOLVE_MODAL_CALLBACK = "escalation_resolve_modal"
OUTCOME_BLOCK = "outcome"
NOTE_BLOCK = "note"
UNKNOWN_ESCALATION = "This escalation no longer exists."

# The same outcomes on every surface, so a resolved escalation reads the same everywhere.
OUTCOMES = RESOLVE_OUTCOMES
OUTCOME_LABELS = dict(OUTCOMES)

_LEVEL_EMOJI = {
    "critical": ":red_circle:",
    "urgent": ":red_circle:",
    "high": ":large_orange_circle:",
    "medium": ":large_yellow_circle:",
    "low": ":white_circle:",
}
_ROLE_LABELS = {
    Role.CUSTOMER: "Customer",
    Role.BOT: "Bot",
    Role.AGENT: "Agent",
    Role.SYSTEM: "System",
}
_USER_ID = re.compile(r"[UW][A-Z0-9]{2,}")
_GROUP_ID = re.compile(r"S[A-Z0-9]{2,}")
# Mentions an admin may already have written in Slack's own markup in rules.yaml.
_SLACK_MENTION = re.compile(r"<!here>|<!channel>|<!subteam\^S[A-Z0-9]{2,}>|<@[UW][A-Z0-9]{2,}>")


@dataclass(frozen=True, slots=True)
class RenderedMessage:
    """A chat message: the notification/fallback `text` and its `blocks`."""

    text: str
    blocks: list[Block]


# --- text helpers -------------------------------------------------------------------------------


def escape(text: str) -> str:
    """Escape Slack's control characters, so customer text cannot mention or link anyone."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def cut(text: str, limit: int) -> str:
    """`text` if it fits, else its head ending in "…", never splitting a <…> token or &entity;."""
    if len(text) <= limit:
        return text
    head = text[: limit - len(ELLIPSIS)]
    # A half-cut "<!date^…>" or "&amp;" would show as garbage; drop the broken tail instead.
    opened = head.rfind("<")
    if opened > head.rfind(">"):
        head = head[:opened]
    amp = head.rfind("&")
    if amp != -1 and ";" not in head[amp:]:
        head = head[:amp]
    return head.rstrip() + ELLIPSIS


def mention(target: str) -> str:
    """Slack's markup for a mention: "@here", "@channel", a user group "S…" or a user "U…"."""
    name = target.strip()
    if _SLACK_MENTION.fullmatch(name):
        return name
    if name in ("@here", "here"):
        return "<!here>"
    if name in ("@channel", "channel"):
        return "<!channel>"
    bare = name.lstrip("@")
    if _GROUP_ID.fullmatch(bare):
        return f"<!subteam^{bare}>"
    if _USER_ID.fullmatch(bare):
        return f"<@{bare}>"
    return escape(name)


def person(name: str) -> str:
    """A user id as a mention (each reader sees the current name), anything else as bold text."""
    if _USER_ID.fullmatch(name):
        return f"<@{name}>"
    return f"*{escape(name)}*"


def slack_date(when: datetime, tokens: str = "{date_short_pretty} at {time}") -> str:
    """A timestamp that each reader sees in their own time zone, with a UTC fallback."""
    fallback = when.strftime("%Y-%m-%d %H:%M UTC")
    return f"<!date^{int(when.timestamp())}^{tokens}|{fallback}>"


def level_emoji(level: str) -> str:
    """The colour dot shown before a level name."""
    return _LEVEL_EMOJI.get(level.lower(), ":rotating_light:")


def parse_escalation_id(value: object) -> int | None:
    """The escalation id carried in a button value or modal, or None when malformed."""
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 18:
        number = int(value)
    else:
        return None
    return number if number > 0 else None


# --- block builders -----------------------------------------------------------------------------


def _plain(text: str, limit: int) -> dict[str, Any]:
    return {"type": "plain_text", "text": cut(text, limit), "emoji": True}


def _section(text: str, **extra: Any) -> Block:
    return {"type": "section", "text": {"type": "mrkdwn", "text": cut(text, MAX_TEXT)}, **extra}


def _context(text: str) -> Block:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": cut(text, MAX_TEXT)}]}


def _header(text: str) -> Block:
    return {"type": "header", "text": _plain(text, MAX_HEADER)}


def _button(
    label: str,
    action_id: str,
    value: str,
    *,
    style: str | None = None,
    url: str | None = None,
) -> dict[str, Any]:
    button: dict[str, Any] = {
        "type": "button",
        "action_id": action_id,
        "text": _plain(label, MAX_BUTTON_TEXT),
        "value": cut(value, MAX_BUTTON_VALUE),
    }
    if style:
        button["style"] = style
    if url:
        button["url"] = url
    return button


def _bullets(lines: Iterable[str]) -> str:
    return "\n".join(f"• {escape(line)}" for line in lines)


def _customer(card: Card) -> str:
    name = escape(card.customer_name) if card.customer_name else "Unknown customer"
    tier = f" ({escape(card.customer_tier)})" if card.customer_tier else ""
    return f"{name}{tier}"


def _status_line(card: Card) -> str:
    if card.status is CardStatus.OPEN:
        return f":hourglass_flowing_sand: *Open*, waiting since {slack_date(card.opened_at)}"
    if card.status is CardStatus.CLAIMED:
        who = person(card.claimed_by) if card.claimed_by else "someone"
        if card.claimed_at is None:
            return f":raising_hand: Claimed by {who}"
        waited = format_wait((card.claimed_at - card.opened_at).total_seconds())
        return (
            f":raising_hand: Claimed by {who} at {slack_date(card.claimed_at, '{time}')}, "
            f"waited {waited}"
        )
    if card.status is CardStatus.RESOLVED:
        who = person(card.closed_by) if card.closed_by else "someone"
        when = f" at {slack_date(card.closed_at, '{time}')}" if card.closed_at else ""
        outcome = outcome_label(card.outcome)
        line = f":white_check_mark: Resolved by {who}{when}: *{escape(outcome)}*"
        if card.note:
            line += f"\n>{escape(card.note)}"
        return line
    if card.status is CardStatus.EXPIRED:
        return ":zzz: The conversation ended before anyone claimed it."
    return ":robot_face: The bot recovered before anyone claimed it."


def _recent_line(role: Role, text: str, when: datetime) -> str:
    label = _ROLE_LABELS.get(role, str(role).title())
    return f"{slack_date(when, '{time}')} *{label}:* {escape(cut(text, MAX_MESSAGE_LINE))}"


def card_actions(card: Card) -> list[dict[str, Any]]:
    """The card's buttons for its status; the escalation id travels in each value."""
    value = str(card.escalation_id)
    buttons: list[dict[str, Any]] = []
    for action in card.actions:
        if action is CardAction.CLAIM:
            buttons.append(_button("Claim", action, value, style="primary"))
        elif action is CardAction.STILL_ON_IT:
            buttons.append(_button("Still on it", action, value, style="primary"))
        elif action is CardAction.RELEASE:
            buttons.append(_button("Release", action, value))
        elif action is CardAction.HAND_BACK:
            buttons.append(_button("Hand back to bot", action, value))
        elif action is CardAction.RESOLVE:
            buttons.append(_button("Resolve…", action, value, style="primary"))
        elif action is CardAction.OPEN_TRANSCRIPT and card.transcript_url:
            buttons.append(_button("Open transcript", action, value, url=card.transcript_url))
    if card.platform_url:
        label = f"Open in {card.platform}"
        buttons.append(_button(label, OPEN_PLATFORM_ACTION, value, url=card.platform_url))
    return buttons


def render_card(card: Card) -> RenderedMessage:
    """The escalation card as a Slack message (notification text plus blocks)."""
    summary = card.summary
    title = f"{card.level.title()} escalation · score {card.score:.1f}"
    loud = card.mention and card.status is CardStatus.OPEN
    lead = f"{mention(card.mention)} " if loud and card.mention else ""
    customer = (
        f"{lead}*{_customer(card)}* on {escape(card.platform)} · team {escape(card.team)}\n"
        f"{_status_line(card)}"
    )
    blocks: list[Block] = [
        _header(f"{level_emoji(card.level)} {title}"),
        _section(customer),
    ]
    if card.reasons:
        blocks.append(_section("*Why it escalated*\n" + _bullets(card.reasons)))
    if summary.wants:
        blocks.append(_section("*What the customer wants*\n" + _bullets(summary.wants)))
    if summary.bot_tried:
        blocks.append(_section("*What the bot tried*\n" + _bullets(summary.bot_tried)))
    if summary.identifiers:
        blocks.append(_context("Identifiers: " + escape(", ".join(summary.identifiers))))
    if summary.recent:
        lines = [_recent_line(m.role, m.text, m.timestamp) for m in summary.recent]
        blocks.append(_section("*Last messages*\n" + "\n".join(lines)))
    for notice in card.notices:
        blocks.append(_context(escape(notice)))
    buttons = card_actions(card)
    if buttons:
        blocks.append({"type": "actions", "elements": buttons})
    blocks.append(
        _context(
            f"Escalation #{card.escalation_id} · conversation {escape(card.conversation_id)}"
            f" · {summary.turns} turns"
        )
    )
    # Notices are unbounded; keep the last block (ids) and stay within the message limit.
    if len(blocks) > MAX_MESSAGE_BLOCKS:
        blocks = [*blocks[: MAX_MESSAGE_BLOCKS - 2], _context(ELLIPSIS), blocks[-1]]
    text = f"{lead}{title}: {_customer(card)} on {escape(card.platform)}"
    return RenderedMessage(text=cut(text, MAX_TEXT), blocks=blocks)


# --- lists, App Home, slash command, modal ------------------------------------------------------


def _list_line(card: Card) -> str:
    first_want = f"\n_{escape(card.summary.wants[0])}_" if card.summary.wants else ""
    return (
        f"*#{card.escalation_id}* {level_emoji(card.level)} {escape(card.level)} · "
        f"{_customer(card)} · {escape(card.platform)} · team {escape(card.team)} · "
        f"since {slack_date(card.opened_at)}{first_want}"
    )


def _list_item(card: Card, button: dict[str, Any] | None) -> Block:
    if button is None:
        return _section(_list_line(card))
    return _section(_list_line(card), accessory=button)


def _claim_button(card: Card) -> dict[str, Any]:
    return _button("Claim", CardAction.CLAIM, str(card.escalation_id), style="primary")


def _resolve_button(card: Card) -> dict[str, Any]:
    return _button("Resolve…", CardAction.RESOLVE, str(card.escalation_id), style="primary")


def _listing(
    cards: Sequence[Card], room: int, button: Callable[[Card], dict[str, Any]], empty: str
) -> list[Block]:
    if not cards:
        return [_context(empty)]
    shown = list(cards[:room]) if len(cards) <= room else list(cards[: room - 1])
    blocks = [_list_item(card, button(card)) for card in shown]
    if len(shown) < len(cards):
        blocks.append(_context(f"…and {len(cards) - len(shown)} more"))
    return blocks


def stats_fields(stats: QueueStats) -> Block:
    """Today's numbers as a two-column section."""
    median = stats.median_time_to_claim_seconds
    rows = [
        ("Opened", str(stats.opened)),
        ("Claimed", str(stats.claimed)),
        ("Resolved", str(stats.resolved)),
        ("Waiting now", str(stats.open_unclaimed)),
        ("Median time to claim", format_wait(median) if median is not None else "–"),
    ]
    return {
        "type": "section",
        "fields": [{"type": "mrkdwn", "text": f"*{name}*\n{value}"} for name, value in rows],
    }


def home_view(
    mine: Sequence[Card], queue: Sequence[Card], stats: QueueStats, notice: str | None = None
) -> dict[str, Any]:
    """The App Home tab: my claimed escalations, the open queue, today's numbers."""
    blocks: list[Block] = []
    if notice:
        blocks.append(_section(f":information_source: {escape(notice)}"))
    # 100 blocks at most: 8 fixed ones, the rest shared between the two lists.
    room = (MAX_VIEW_BLOCKS - 8) // 2
    blocks.append(_header("Your escalations"))
    blocks += _listing(mine, room, _resolve_button, "You hold no escalations.")
    blocks.append({"type": "divider"})
    blocks.append(_header("Open queue"))
    blocks += _listing(queue, room, _claim_button, "Nobody is waiting. :tada:")
    blocks.append({"type": "divider"})
    blocks.append(_header("Today"))
    blocks.append(stats_fields(stats))
    return {"type": "home", "blocks": blocks}


def queue_message(queue: Sequence[Card]) -> RenderedMessage:
    """The open queue as a reply to `/escalations list`."""
    blocks = [_section(f"*Open escalations:* {len(queue)}")]
    blocks += _listing(queue, MAX_MESSAGE_BLOCKS - 2, _claim_button, "Nobody is waiting.")
    return RenderedMessage(text=f"Open escalations: {len(queue)}", blocks=blocks)


def stats_message(stats: QueueStats) -> RenderedMessage:
    """Today's numbers as a reply to `/escalations stats`."""
    text = (
        f"Today: {stats.opened} opened, {stats.claimed} claimed, {stats.resolved} resolved, "
        f"{stats.open_unclaimed} waiting"
    )
    return RenderedMessage(text=text, blocks=[_section("*Today*"), stats_fields(stats)])


def resolve_modal(card: Card, *, channel: str | None, from_home: bool) -> dict[str, Any]:
    """The Resolve dialog: an outcome and a note; the escalation id rides in private_metadata."""
    metadata = {"escalation_id": card.escalation_id, "channel": channel, "home": from_home}
    options = [
        {"text": _plain(label, MAX_OPTION_TEXT), "value": value} for value, label in OUTCOMES
    ]
    return {
        "type": "modal",
        "callback_id": RESOLVE_MODAL_CALLBACK,
        "title": _plain("Resolve escalation", 24),
        "submit": _plain("Resolve", 24),
        "close": _plain("Cancel", 24),
        "private_metadata": json.dumps(metadata, separators=(",", ":")),
        "blocks": [
            _section(f"*#{card.escalation_id}* {_customer(card)} on {escape(card.platform)}"),
            {
                "type": "input",
                "block_id": OUTCOME_BLOCK,
                "label": _plain("Outcome", 2000),
                "element": {
                    "type": "static_select",
                    "action_id": OUTCOME_BLOCK,
                    "placeholder": _plain("How did it end?", 150),
                    "options": options,
                },
            },
            {
                "type": "input",
                "block_id": NOTE_BLOCK,
                "optional": True,
                "label": _plain("Note", 2000),
                "element": {
                    "type": "plain_text_input",
                    "action_id": NOTE_BLOCK,
                    "multiline": True,
                    "max_length": MAX_TEXT,
                },
            },
        ],
    }
