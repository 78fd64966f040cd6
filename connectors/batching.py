"""Grouping parsed events into one batch per conversation, merging what each event said about it."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from engine.events import ConversationEvent, ConversationMeta, Customer, InboundBatch


@dataclass(slots=True)
class _Draft:
    meta: ConversationMeta
    events: dict[str, ConversationEvent] = field(default_factory=dict)


def merge_meta(old: ConversationMeta, new: ConversationMeta) -> ConversationMeta:
    """`new` over `old`, field by field: a later event that says less does not erase facts."""
    return ConversationMeta(
        platform=new.platform,
        customer=Customer(
            id=new.customer.id or old.customer.id,
            name=new.customer.name or old.customer.name,
            tier=new.customer.tier or old.customer.tier,
            email=new.customer.email or old.customer.email,
        ),
        metadata={**old.metadata, **new.metadata},
        language=new.language or old.language,
        link=new.link or old.link,
    )


def group(items: Iterable[tuple[str, ConversationMeta, ConversationEvent]]) -> list[InboundBatch]:
    """One batch per conversation in first-seen order; a repeated event id keeps its first event."""
    drafts: dict[str, _Draft] = {}
    for conversation_id, meta, event in items:
        draft = drafts.get(conversation_id)
        if draft is None:
            draft = drafts[conversation_id] = _Draft(meta)
        else:
            draft.meta = merge_meta(draft.meta, meta)
        draft.events.setdefault(event.event_id, event)
    return [
        InboundBatch(conversation_id=cid, meta=draft.meta, events=tuple(draft.events.values()))
        for cid, draft in drafts.items()
    ]


def scalar_metadata(raw: Mapping[str, Any]) -> dict[str, str]:
    """The scalar members of a platform's free-form metadata, as strings (nested values dropped).

    A platform's metadata is not ours to reject, unlike our own format: keep what fits.
    """
    flat: dict[str, str] = {}
    for key, value in raw.items():
        if isinstance(value, bool):
            flat[key] = "true" if value else "false"
        elif isinstance(value, int | float | str):
            flat[key] = str(value)
    return flat


def first_of_each(events: Iterable[ConversationEvent]) -> tuple[ConversationEvent, ...]:
    """The events in order, without later events that repeat an earlier event's id."""
    kept: dict[str, ConversationEvent] = {}
    for event in events:
        kept.setdefault(event.event_id, event)
    return tuple(kept.values())
