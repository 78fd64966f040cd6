"""Digest numbers as SQL aggregates, and the record of digests posted (one per team and period).

Every number is computed by the database over the team's escalations opened in the period (the
`ix_escalations_team_opened_at` index), so a year of history costs no more than the period itself;
nothing here loads escalation rows into Python except the few "worst" ones the digest links to.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Float,
    and_,
    cast,
    func,
    literal_column,
    select,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Session

from storage import tables
from storage._sql import connection, is_postgres, upsert

_e = tables.escalations
_h = tables.handoff_events
_c = tables.conversations
_digests = tables.digests


@dataclass(frozen=True, slots=True)
class Spread:
    """Median and 90th percentile of durations in seconds (None when there are none)."""

    count: int
    median_seconds: float | None
    p90_seconds: float | None


@dataclass(frozen=True, slots=True)
class WorstConversation:
    """One of the period's worst escalations, for a link in the digest."""

    escalation_id: int
    conversation_id: str
    level: str
    score: float
    status: str
    reason: str | None
    link: str | None


@dataclass(frozen=True, slots=True)
class DigestNumbers:
    """Everything the digest says about one team and one period [start, end)."""

    handoffs: int
    previous_handoffs: int
    conversations: int  # conversations with activity in the period, all teams
    by_level: tuple[tuple[str, int], ...]  # most first
    top_reasons: tuple[tuple[str, int], ...]  # signal name, escalations it contributed to
    time_to_claim: Spread
    resolution_time: Spread
    still_open: int  # opened in the period and still unclaimed now
    expired: int  # opened in the period, the conversation ended before anyone claimed
    recovered: int
    opened_by_utc_hour: tuple[tuple[datetime, int], ...]  # start of each UTC hour with handoffs
    claimers: tuple[tuple[str, int], ...]  # who claimed how many (claims made in the period)
    worst: tuple[WorstConversation, ...]


@dataclass(frozen=True, slots=True)
class PostedDigest:
    """A digest recorded as posted."""

    id: int
    team: str
    period_start: datetime
    period_end: datetime
    posted_at: datetime
    source: str
    content: dict[str, Any]


def _seconds_between(session: Session, start: Any, end: Any) -> ColumnElement[float]:
    """`end - start` in seconds, on either database (SQLite stores UTC timestamps as text)."""
    if is_postgres(session):
        return cast(func.extract("epoch", end - start), Float)
    return (func.julianday(end) - func.julianday(start)) * 86400.0


def _hour_of(session: Session, column: Any) -> ColumnElement[Any]:
    if is_postgres(session):
        return func.date_trunc("hour", column)
    return func.strftime("%Y-%m-%d %H:00:00", column)


def _as_utc_hour(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
    return datetime.fromisoformat(str(value)).replace(tzinfo=UTC)


def _in_period(team: str, start: datetime, end: datetime) -> ColumnElement[bool]:
    return and_(_e.c.team == team, _e.c.opened_at >= start, _e.c.opened_at < end)


def _spread(session: Session, seconds: ColumnElement[float], where: ColumnElement[bool]) -> Spread:
    """Median and 90th percentile (interpolated, like percentile_cont) without loading rows."""
    db = connection(session)
    count = int(db.execute(select(func.count()).select_from(_e).where(where)).scalar_one())
    if count == 0:
        return Spread(0, None, None)

    def percentile(fraction: float) -> float:
        position = fraction * (count - 1)
        low = math.floor(position)
        values = select(cast(seconds, Float)).where(where).order_by(seconds).offset(low).limit(2)
        pair = [float(value) for value in db.execute(values).scalars()]
        if len(pair) == 1 or position == low:
            return pair[0]
        return pair[0] + (pair[1] - pair[0]) * (position - low)

    return Spread(count, percentile(0.5), percentile(0.9))


def _reason_signals(session: Session, where: ColumnElement[bool]) -> list[tuple[str, int]]:
    """How many of the escalations each signal contributed to, most first."""
    signal: ColumnElement[Any]
    if is_postgres(session):
        element = func.jsonb_array_elements(cast(_e.c.reasons, JSONB)).table_valued("value")
        signal = element.c.value.op("->>")("signal")
        statement = (
            select(signal.label("signal"), func.count(_e.c.id.distinct()))
            .select_from(_e)
            .join(element, literal_column("true"))
            .where(where)
        )
    else:
        element = func.json_each(_e.c.reasons).table_valued("value")
        signal = func.json_extract(element.c.value, "$.signal")
        statement = (
            select(signal.label("signal"), func.count(_e.c.id.distinct()))
            .select_from(_e)
            .join(element, literal_column("1"))
            .where(where)
        )
    rows = connection(session).execute(statement.group_by(signal)).all()
    counted = [(str(name), int(count)) for name, count in rows if name is not None]
    return sorted(counted, key=lambda item: (-item[1], item[0]))


def digest_numbers(
    *,
    session: Session,
    team: str,
    start: datetime,
    end: datetime,
    previous_start: datetime,
    worst_limit: int = 5,
    reason_limit: int = 5,
) -> DigestNumbers:
    """The digest's numbers for `team` over [start, end), compared with [previous_start, start)."""
    db = connection(session)
    period = _in_period(team, start, end)
    handoffs, still_open, expired, recovered = db.execute(
        select(
            func.count(),
            func.count().filter(_e.c.status == "open"),
            func.count().filter(_e.c.status == "expired"),
            func.count().filter(_e.c.status == "recovered"),
        ).where(period)
    ).one()
    previous_handoffs = db.execute(
        select(func.count()).where(_in_period(team, previous_start, start))
    ).scalar_one()
    conversations = db.execute(
        select(func.count()).where(_c.c.last_event_at >= start, _c.c.first_event_at < end)
    ).scalar_one()
    by_level = db.execute(select(_e.c.level, func.count()).where(period).group_by(_e.c.level)).all()
    hour = _hour_of(session, _e.c.opened_at)
    by_hour = db.execute(select(hour, func.count()).where(period).group_by(hour)).all()
    claim_seconds = _seconds_between(session, _e.c.opened_at, _e.c.claimed_at)
    time_to_claim = _spread(session, claim_seconds, and_(period, _e.c.claimed_at.is_not(None)))
    resolve_seconds = _seconds_between(session, _e.c.opened_at, _e.c.closed_at)
    resolution_time = _spread(
        session,
        resolve_seconds,
        and_(period, _e.c.status == "resolved", _e.c.closed_at.is_not(None)),
    )
    claimer = func.coalesce(func.max(_h.c.actor_name), _h.c.actor_id)
    claimers = db.execute(
        select(claimer, func.count())
        .select_from(_h.join(_e, _e.c.id == _h.c.escalation_id))
        .where(_h.c.kind == "claimed", _h.c.at >= start, _h.c.at < end, _e.c.team == team)
        .group_by(_h.c.actor_id)
    ).all()
    worst = db.execute(
        select(
            _e.c.id,
            _e.c.conversation_id,
            _e.c.level,
            _e.c.score,
            _e.c.status,
            _e.c.reasons,
            _c.c.link,
        )
        .select_from(_e.outerjoin(_c, _c.c.id == _e.c.conversation_id))
        .where(period)
        .order_by(_e.c.score.desc(), _e.c.opened_at, _e.c.id)
        .limit(worst_limit)
    ).all()
    return DigestNumbers(
        handoffs=int(handoffs),
        previous_handoffs=int(previous_handoffs),
        conversations=int(conversations),
        by_level=tuple(
            sorted(((str(n), int(c)) for n, c in by_level), key=lambda i: (-i[1], i[0]))
        ),
        top_reasons=tuple(_reason_signals(session, period)[:reason_limit]),
        time_to_claim=time_to_claim,
        resolution_time=resolution_time,
        still_open=int(still_open),
        expired=int(expired),
        recovered=int(recovered),
        opened_by_utc_hour=tuple(sorted((_as_utc_hour(h), int(c)) for h, c in by_hour)),
        claimers=tuple(
            sorted(((str(n), int(c)) for n, c in claimers), key=lambda i: (-i[1], i[0]))
        ),
        worst=tuple(
            WorstConversation(
                escalation_id=int(row.id),
                conversation_id=str(row.conversation_id),
                level=str(row.level),
                score=float(row.score),
                status=str(row.status),
                reason=_first_reason(row.reasons),
                link=row.link,
            )
            for row in worst
        ),
    )


def _first_reason(reasons: Any) -> str | None:
    if isinstance(reasons, list) and reasons and isinstance(reasons[0], dict):
        text = reasons[0].get("text")
        return str(text) if text else None
    return None


# --- the record of posted digests ----------------------------------------------------------------


def _posted(row: Any) -> PostedDigest:
    return PostedDigest(
        id=int(row["id"]),
        team=str(row["team"]),
        period_start=row["period_start"],
        period_end=row["period_end"],
        posted_at=row["posted_at"],
        source=str(row["source"]),
        content=row["content"] or {},
    )


def record_digest(
    *,
    session: Session,
    team: str,
    period_start: datetime,
    period_end: datetime,
    now: datetime,
    source: str,
    content: dict[str, Any],
) -> int | None:
    """Record the team's digest for the period; None when one was already recorded.

    ON CONFLICT DO NOTHING on (team, period_start): of two replicas (or a replica and the CLI)
    recording the same period, exactly one gets an id and goes on to post.
    """
    statement = (
        upsert(session, _digests)
        .values(
            team=team,
            period_start=period_start,
            period_end=period_end,
            posted_at=now,
            source=source,
            content=content,
        )
        .on_conflict_do_nothing(index_elements=[_digests.c.team, _digests.c.period_start])
        .returning(_digests.c.id)
    )
    value = connection(session).execute(statement).scalar_one_or_none()
    return int(value) if value is not None else None


def get_digest(*, session: Session, team: str, period_start: datetime) -> PostedDigest | None:
    """The recorded digest of the team for the period starting at `period_start`."""
    row = (
        connection(session)
        .execute(
            select(_digests).where(_digests.c.team == team, _digests.c.period_start == period_start)
        )
        .mappings()
        .one_or_none()
    )
    return _posted(row) if row is not None else None


def get_digest_by_id(*, session: Session, digest_id: int) -> PostedDigest | None:
    """A recorded digest by id (the outbox refers to it)."""
    row = (
        connection(session)
        .execute(select(_digests).where(_digests.c.id == digest_id))
        .mappings()
        .one_or_none()
    )
    return _posted(row) if row is not None else None


def list_digests(*, session: Session, team: str | None = None) -> list[PostedDigest]:
    """Recorded digests, oldest period first."""
    statement = select(_digests).order_by(_digests.c.period_start, _digests.c.id)
    if team is not None:
        statement = statement.where(_digests.c.team == team)
    return [_posted(row) for row in connection(session).execute(statement).mappings()]
