"""The schema: one SQLModel class per table.

Queries elsewhere in `storage/` use the core `Table` objects exported at the bottom
(`conversations`, `events`, ...), because most hot-path statements are single core statements
(upserts, compare-and-set updates, multi-row inserts) that return plain rows, not ORM objects.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlmodel import Field, SQLModel

from storage.types import UtcDateTime, json_text_type, json_type

# The statuses in which an escalation still needs a human; at most one per conversation.
ACTIVE_ESCALATION_STATUSES = ("open", "claimed")
# Partial-index predicates, written as literals: an ON CONFLICT clause must repeat them exactly,
# and PostgreSQL cannot match a predicate with bound parameters once it uses a generic plan.
ACTIVE_PREDICATE = text("status IN ('open', 'claimed')")
PENDING_PREDICATE = text("status = 'pending'")


def _utc(*, nullable: bool = True, index: bool = False) -> Any:
    return Field(sa_column=Column(UtcDateTime(), nullable=nullable, index=index))


def _json(*, nullable: bool = True, name: str | None = None, as_text: bool = False) -> Any:
    kind = json_text_type() if as_text else json_type()
    if name is None:
        return Field(sa_column=Column(kind, nullable=nullable))
    return Field(sa_column=Column(name, kind, nullable=nullable))


class SchemaVersion(SQLModel, table=True):
    """One row per applied schema version; the highest is the schema in force."""

    __tablename__ = "schema_version"

    version: int = Field(sa_column=Column(Integer, primary_key=True, autoincrement=False))
    applied_at: datetime = _utc(nullable=False)


class Conversation(SQLModel, table=True):
    """A conversation we have seen at least one event of, with the engine's running state."""

    __tablename__ = "conversations"

    id: str = Field(sa_column=Column(String(255), primary_key=True))
    platform: str = Field(sa_column=Column(String(64), nullable=False))
    customer_id: str | None = Field(default=None, sa_column=Column(String(255)))
    customer_name: str | None = Field(default=None, sa_column=Column(Text))
    customer_tier: str | None = Field(default=None, sa_column=Column(String(64)))
    customer_email: str | None = Field(default=None, sa_column=Column(Text))
    # `metadata` is taken by SQLModel itself, hence the attribute name.
    meta_data: dict[str, Any] | None = _json(name="metadata")
    language: str | None = Field(default=None, sa_column=Column(String(32)))
    link: str | None = Field(default=None, sa_column=Column(Text))
    # Kept as the text written (PostgreSQL `json`): the ingest compares it with the text it
    # last saved (`bot.pipeline.SavedStates`), and writes it out itself.
    state: dict[str, Any] | None = _json(as_text=True)
    score: float = Field(default=0.0, sa_column=Column(Float, nullable=False, default=0.0))
    level: str | None = Field(default=None, sa_column=Column(String(64)))
    status: str = Field(
        default="active", sa_column=Column(String(16), nullable=False, default="active")
    )
    first_event_at: datetime | None = _utc()
    last_event_at: datetime | None = _utc(index=True)
    created_at: datetime = _utc(nullable=False)
    updated_at: datetime = _utc(nullable=False)


class Event(SQLModel, table=True):
    """One conversation event, with the engine's verdict right after it."""

    __tablename__ = "events"
    __table_args__ = (
        # Also the index every read of a conversation's events goes through. They are only
        # ever read whole (a transcript) and then sorted by time, a sort that costs about what
        # reading the rows does: an index in time order (dropped by migration 3) saved it and
        # cost every event's insert a B-tree of its own.
        UniqueConstraint("conversation_id", "event_id", name="uq_events_conversation_event"),
    )

    # Also the arrival order, which breaks ties between events with the same timestamp.
    pk: int | None = Field(default=None, sa_column=Column(Integer, primary_key=True))
    conversation_id: str = Field(
        sa_column=Column(
            String(255), ForeignKey("conversations.id", ondelete="CASCADE"), nullable=False
        )
    )
    event_id: str = Field(sa_column=Column(String(255), nullable=False))
    type: str = Field(sa_column=Column(String(32), nullable=False))
    role: str | None = Field(default=None, sa_column=Column(String(16)))
    text: str | None = Field(default=None, sa_column=Column(Text))
    intent: str | None = Field(default=None, sa_column=Column(Text))
    confidence: float | None = Field(default=None, sa_column=Column(Float))
    fallback: bool | None = Field(default=None, sa_column=Column(Boolean))
    outcome: str | None = Field(default=None, sa_column=Column(Text))
    timestamp: datetime = _utc(nullable=False)
    received_at: datetime = _utc(nullable=False)
    extra: dict[str, Any] | None = _json()
    score: float | None = Field(default=None, sa_column=Column(Float))
    level: str | None = Field(default=None, sa_column=Column(String(64)))
    reasons: list[dict[str, Any]] | None = _json()
    decision: str | None = Field(default=None, sa_column=Column(String(16)))


class Escalation(SQLModel, table=True):
    """A decision that a human must take over one conversation, and what became of it."""

    __tablename__ = "escalations"
    __table_args__ = (
        # The lifecycle relies on this: a webhook retry, a second replica or a race can never
        # leave two cards asking for a human on the same conversation.
        Index(
            "uq_escalations_one_active",
            "conversation_id",
            unique=True,
            sqlite_where=ACTIVE_PREDICATE,
            postgresql_where=ACTIVE_PREDICATE,
        ),
        Index("ix_escalations_status_opened_at", "status", "opened_at"),
        Index("ix_escalations_team_opened_at", "team", "opened_at"),
        Index("ix_escalations_claimed_by", "claimed_by"),
    )

    id: int | None = Field(default=None, sa_column=Column(Integer, primary_key=True))
    conversation_id: str = Field(
        sa_column=Column(
            String(255), ForeignKey("conversations.id", ondelete="CASCADE"), nullable=False
        )
    )
    status: str = Field(sa_column=Column(String(16), nullable=False))
    level: str = Field(sa_column=Column(String(64), nullable=False))
    score: float = Field(sa_column=Column(Float, nullable=False))
    reasons: list[dict[str, Any]] | None = _json()
    team: str | None = Field(default=None, sa_column=Column(String(128)))
    mention: str | None = Field(default=None, sa_column=Column(Text))
    summary: dict[str, Any] | None = _json()
    opened_at: datetime = _utc(nullable=False, index=True)
    opened_at_event_id: str | None = Field(default=None, sa_column=Column(String(255)))
    claimed_by: str | None = Field(default=None, sa_column=Column(String(255)))
    claimed_by_name: str | None = Field(default=None, sa_column=Column(Text))
    claimed_at: datetime | None = _utc()
    closed_at: datetime | None = _utc()
    closed_by: str | None = Field(default=None, sa_column=Column(String(255)))
    outcome: str | None = Field(default=None, sa_column=Column(Text))
    note: str | None = Field(default=None, sa_column=Column(Text))
    updated_at: datetime = _utc(nullable=False)
    # The route, SLA chain and settings in force when it opened: a rules reload must not change
    # what an already-open escalation promised.
    snapshot: dict[str, Any] | None = _json()


class HandoffEvent(SQLModel, table=True):
    """One step in an escalation's life: a transition, an SLA step or a platform hand-off call."""

    __tablename__ = "handoff_events"
    __table_args__ = (
        Index("ix_handoff_events_escalation_at", "escalation_id", "at"),
        Index("ix_handoff_events_kind_at", "kind", "at"),
    )

    id: int | None = Field(default=None, sa_column=Column(Integer, primary_key=True))
    escalation_id: int = Field(
        sa_column=Column(Integer, ForeignKey("escalations.id", ondelete="CASCADE"), nullable=False)
    )
    at: datetime = _utc(nullable=False)
    actor_id: str | None = Field(default=None, sa_column=Column(String(255)))
    actor_name: str | None = Field(default=None, sa_column=Column(Text))
    surface: str | None = Field(default=None, sa_column=Column(String(32)))
    from_status: str | None = Field(default=None, sa_column=Column(String(16)))
    to_status: str | None = Field(default=None, sa_column=Column(String(16)))
    kind: str = Field(sa_column=Column(String(64), nullable=False))
    detail: dict[str, Any] | None = _json()


class CardMessage(SQLModel, table=True):
    """Where an escalation's card was posted, so it can be edited in place."""

    __tablename__ = "card_messages"
    __table_args__ = (
        UniqueConstraint(
            "escalation_id", "surface", "channel", name="uq_card_messages_escalation_target"
        ),
    )

    id: int | None = Field(default=None, sa_column=Column(Integer, primary_key=True))
    escalation_id: int = Field(
        sa_column=Column(Integer, ForeignKey("escalations.id", ondelete="CASCADE"), nullable=False)
    )
    surface: str = Field(sa_column=Column(String(32), nullable=False))
    channel: str = Field(sa_column=Column(String(255), nullable=False))
    message_id: str = Field(sa_column=Column(String(255), nullable=False))
    posted_at: datetime = _utc(nullable=False)


class OutboxRow(SQLModel, table=True):
    """A delivery to make (post or edit a card, reply, call the platform), retried until done."""

    __tablename__ = "outbox"
    __table_args__ = (
        Index(
            "uq_outbox_pending_dedupe",
            "dedupe_key",
            unique=True,
            sqlite_where=PENDING_PREDICATE,
            postgresql_where=PENDING_PREDICATE,
        ),
        Index("ix_outbox_status_due_at", "status", "due_at"),
    )

    id: int | None = Field(default=None, sa_column=Column(Integer, primary_key=True))
    kind: str = Field(sa_column=Column(String(32), nullable=False))
    surface: str | None = Field(default=None, sa_column=Column(String(32)))
    escalation_id: int | None = Field(
        default=None,
        sa_column=Column(Integer, ForeignKey("escalations.id", ondelete="CASCADE")),
    )
    payload: dict[str, Any] | None = _json()
    status: str = Field(sa_column=Column(String(16), nullable=False))
    attempts: int = Field(default=0, sa_column=Column(Integer, nullable=False, default=0))
    due_at: datetime = _utc(nullable=False)
    leased_until: datetime | None = _utc()
    last_error: str | None = Field(default=None, sa_column=Column(Text))
    created_at: datetime = _utc(nullable=False)
    done_at: datetime | None = _utc()
    dedupe_key: str | None = Field(default=None, sa_column=Column(String(255)))


class TeamsChannel(SQLModel, table=True):
    """The Teams bot's conversation reference for a channel, needed to post proactively."""

    __tablename__ = "teams_channels"

    channel_id: str = Field(sa_column=Column(String(255), primary_key=True))
    reference: dict[str, Any] = _json(nullable=False)
    updated_at: datetime = _utc(nullable=False)


class DigestPost(SQLModel, table=True):
    """A team's digest for one period, recorded when it is posted: at most one per period."""

    __tablename__ = "digests"
    __table_args__ = (UniqueConstraint("team", "period_start", name="uq_digests_team_period"),)

    id: int | None = Field(default=None, sa_column=Column(Integer, primary_key=True))
    team: str = Field(sa_column=Column(String(128), nullable=False))
    period_start: datetime = _utc(nullable=False)
    period_end: datetime = _utc(nullable=False)
    posted_at: datetime = _utc(nullable=False)
    # "schedule" or "cli"; the numbers as posted, so a re-send shows what the team saw.
    source: str = Field(sa_column=Column(String(16), nullable=False))
    content: dict[str, Any] | None = _json()


class SlaStepFired(SQLModel, table=True):
    """An SLA chain step that fired; the unique key keeps it from firing twice."""

    __tablename__ = "sla_steps"
    __table_args__ = (
        UniqueConstraint(
            "escalation_id", "waiting_since", "step", name="uq_sla_steps_escalation_round_step"
        ),
    )

    id: int | None = Field(default=None, sa_column=Column(Integer, primary_key=True))
    escalation_id: int = Field(
        sa_column=Column(Integer, ForeignKey("escalations.id", ondelete="CASCADE"), nullable=False)
    )
    # When the escalation last became open (opened, or released): a release restarts the chain.
    waiting_since: datetime = _utc(nullable=False)
    step: str = Field(sa_column=Column(String(32), nullable=False))
    fired_at: datetime = _utc(nullable=False)


def _table(model: type[SQLModel]) -> Table:
    table = model.__table__  # type: ignore[attr-defined]
    assert isinstance(table, Table)
    return table


schema_version = _table(SchemaVersion)
conversations = _table(Conversation)
events = _table(Event)
escalations = _table(Escalation)
handoff_events = _table(HandoffEvent)
card_messages = _table(CardMessage)
outbox = _table(OutboxRow)
teams_channels = _table(TeamsChannel)
digests = _table(DigestPost)
sla_steps = _table(SlaStepFired)

ALL_TABLES = (
    schema_version,
    conversations,
    events,
    escalations,
    handoff_events,
    card_messages,
    outbox,
    teams_channels,
    digests,
    sla_steps,
)
