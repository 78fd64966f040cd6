"""The dashboard's figures: every count, bucket and percentile is one SQL aggregate.

Time windows are half-open, `since <= t < until`, and always about when an escalation opened
(or, for the hand-off rate, when a conversation started), so the same window gives the same
numbers on every page and in the JSON API.

Percentiles: PostgreSQL computes them itself (`percentile_cont`, linear interpolation). SQLite has
no percentile aggregate, so there the database computes each duration and returns only those
numbers, sorted; the same linear interpolation then runs over that one sorted column. Both give
identical results for the same data.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from sqlalchemy import (
    ColumnElement,
    Integer,
    Select,
    and_,
    bindparam,
    exists,
    func,
    literal_column,
    select,
    text,
)
from sqlmodel import Session

from storage import outbox, tables
from storage._sql import connection, is_postgres
from storage.outbox import OutboxStats
from storage.tables import ACTIVE_ESCALATION_STATUSES
from storage.types import UtcDateTime

Bucket = Literal["hour", "day"]
BUCKETS: tuple[Bucket, ...] = ("hour", "day")
WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")

_e = tables.escalations
_c = tables.conversations
_h = tables.handoff_events


@dataclass(frozen=True, slots=True)
class Count:
    """How many escalations share one value (a level, a team, a signal...)."""

    key: str
    count: int


@dataclass(frozen=True, slots=True)
class Point:
    """Escalations opened in one hour or day, starting at `start` (UTC)."""

    start: datetime
    count: int


@dataclass(frozen=True, slots=True)
class Durations:
    """Median and 90th percentile of a duration, in seconds, over `count` escalations."""

    count: int
    median_seconds: float | None
    p90_seconds: float | None


@dataclass(frozen=True, slots=True)
class Overview:
    """Every figure of the overview page for one window."""

    since: datetime
    until: datetime
    bucket: Bucket
    frequency: tuple[Point, ...]  # every bucket of the window, empty ones included
    escalations: int
    conversations: int  # conversations that started in the window
    escalated_conversations: int  # of those, how many were ever escalated
    time_to_claim: Durations  # opening to first claim
    resolution_time: Durations  # opening to resolution
    by_level: tuple[Count, ...]
    by_reason: tuple[Count, ...]  # by signal; an escalation counts once per signal it had
    by_team: tuple[Count, ...]
    by_platform: tuple[Count, ...]
    heatmap: tuple[tuple[int, ...], ...]  # [weekday Monday=0][hour 0-23], UTC
    open_now: int  # open or claimed, whenever opened
    unclaimed_now: int
    deliveries: OutboxStats  # cards and messages waiting to reach Slack / Teams, now

    @property
    def handoff_rate(self) -> float | None:
        """The share of the window's conversations that were escalated (None without any)."""
        if not self.conversations:
            return None
        return self.escalated_conversations / self.conversations


@dataclass(frozen=True, slots=True)
class QueueItem:
    """One open or claimed escalation as the queue shows it."""

    escalation_id: int
    conversation_id: str
    status: str
    level: str
    score: float
    team: str | None
    platform: str | None
    customer_name: str | None
    opened_at: datetime
    claimed_by: str | None
    claimed_at: datetime | None


def _seconds_between(session: Session, start: Any, end: Any) -> ColumnElement[Any]:
    if is_postgres(session):
        return func.extract("epoch", end - start)
    # SQLite keeps timestamps as ISO text; julianday() turns them into days.
    return (func.julianday(end) - func.julianday(start)) * literal_column("86400.0")


def _utc_text(session: Session, column: Any, pattern: Literal["hour", "day"]) -> Any:
    if is_postgres(session):
        fmt = 'YYYY-MM-DD"T"HH24' if pattern == "hour" else "YYYY-MM-DD"
        return func.to_char(func.timezone("UTC", column), fmt)
    return func.strftime("%Y-%m-%dT%H" if pattern == "hour" else "%Y-%m-%d", column)


def _interpolate(sorted_values: Sequence[float], fraction: float) -> float | None:
    # The same definition as PostgreSQL's percentile_cont.
    if not sorted_values:
        return None
    position = fraction * (len(sorted_values) - 1)
    lower = int(position)
    upper = min(lower + 1, len(sorted_values) - 1)
    weight = position - lower
    return sorted_values[lower] + (sorted_values[upper] - sorted_values[lower]) * weight


def _durations(session: Session, seconds: Select[Any]) -> Durations:
    inner = seconds.subquery()
    value = inner.c.seconds
    db = connection(session)
    if is_postgres(session):
        count, median, p90 = db.execute(
            select(
                func.count(value),
                func.percentile_cont(0.5).within_group(value),
                func.percentile_cont(0.9).within_group(value),
            )
        ).one()
        return Durations(
            int(count),
            _rounded(median),
            _rounded(p90),
        )
    values = [float(v) for v in db.execute(select(value).order_by(value)).scalars()]
    return Durations(
        len(values), _rounded(_interpolate(values, 0.5)), _rounded(_interpolate(values, 0.9))
    )


def _rounded(value: float | None) -> float | None:
    # Millisecond precision: julianday() arithmetic carries float noise below that.
    return None if value is None else round(float(value), 3)


def _counts(
    session: Session, key: Any, window: ColumnElement[bool], join_conversations: bool = False
) -> tuple[Count, ...]:
    number = func.count()
    statement = select(key.label("key"), number.label("n")).select_from(
        _e.join(_c, _c.c.id == _e.c.conversation_id) if join_conversations else _e
    )
    rows = connection(session).execute(
        statement.where(window).group_by(key).order_by(number.desc(), key)
    )
    return tuple(Count(str(k) if k is not None else "(none)", int(n)) for k, n in rows)


def _by_reason(session: Session, since: datetime, until: datetime) -> tuple[Count, ...]:
    # Each escalation's reasons are a JSON list; unnest it in the database, one row per signal.
    if is_postgres(session):
        elements = "jsonb_array_elements(e.reasons) AS r(value)"
        signal = "r.value ->> 'signal'"
    else:
        elements = "json_each(e.reasons) AS r"
        signal = "json_extract(r.value, '$.signal')"
    statement = text(
        f"""
        SELECT signal, count(*) AS n FROM (
            SELECT DISTINCT e.id, {signal} AS signal
            FROM escalations e, {elements}
            WHERE e.opened_at >= :since AND e.opened_at < :until
        ) AS per_escalation
        GROUP BY signal ORDER BY n DESC, signal
        """  # noqa: S608 - only the two fixed fragments above are interpolated
    ).bindparams(bindparam("since", type_=UtcDateTime()), bindparam("until", type_=UtcDateTime()))
    rows = connection(session).execute(statement, {"since": since, "until": until})
    return tuple(Count(str(signal), int(n)) for signal, n in rows)


def _frequency(
    session: Session, since: datetime, until: datetime, bucket: Bucket, window: ColumnElement[bool]
) -> tuple[Point, ...]:
    label = _utc_text(session, _e.c.opened_at, bucket)
    rows = connection(session).execute(
        select(label.label("bucket"), func.count()).where(window).group_by(label)
    )
    counted = {str(key): int(n) for key, n in rows}
    step = timedelta(hours=1) if bucket == "hour" else timedelta(days=1)
    start = since.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    if bucket == "day":
        start = start.replace(hour=0)
    points: list[Point] = []
    fmt = "%Y-%m-%dT%H" if bucket == "hour" else "%Y-%m-%d"
    # Empty buckets have no row; the chart needs them as zeros.
    while start < until:
        points.append(Point(start, counted.get(start.strftime(fmt), 0)))
        start += step
    return tuple(points)


def _heatmap(session: Session, window: ColumnElement[bool]) -> tuple[tuple[int, ...], ...]:
    if is_postgres(session):
        local = func.timezone("UTC", _e.c.opened_at)
        weekday: Any = func.extract("isodow", local) - 1
        hour: Any = func.extract("hour", local)
    else:
        # strftime('%w') counts from Sunday = 0; shift to Monday = 0.
        weekday = (func.cast(func.strftime("%w", _e.c.opened_at), Integer) + 6) % 7
        hour = func.cast(func.strftime("%H", _e.c.opened_at), Integer)
    rows = connection(session).execute(
        select(weekday.label("weekday"), hour.label("hour"), func.count())
        .where(window)
        .group_by(weekday, hour)
    )
    grid = [[0] * 24 for _ in WEEKDAYS]
    for day, hour_of_day, n in rows:
        grid[int(day)][int(hour_of_day)] = int(n)
    return tuple(tuple(row) for row in grid)


def overview(
    *,
    session: Session,
    since: datetime,
    until: datetime,
    bucket: Bucket = "hour",
    now: datetime | None = None,
) -> Overview:
    """Every overview figure for escalations opened (and conversations started) in the window.

    The "now" figures (open, unclaimed, deliveries waiting) are as of `now` (default `until`).
    """
    if bucket not in BUCKETS:
        raise ValueError(f"bucket must be one of {', '.join(BUCKETS)}, not {bucket!r}")
    db = connection(session)
    window = and_(_e.c.opened_at >= since, _e.c.opened_at < until)
    total = int(db.execute(select(func.count()).select_from(_e).where(window)).scalar_one())
    escalated = exists().where(_e.c.conversation_id == _c.c.id)
    started, escalated_count = db.execute(
        select(func.count(), func.count().filter(escalated))
        .select_from(_c)
        .where(_c.c.first_event_at >= since, _c.c.first_event_at < until)
    ).one()
    first_claims = (
        select(_h.c.escalation_id, func.min(_h.c.at).label("claimed_at"))
        .where(_h.c.kind == "claimed")
        .group_by(_h.c.escalation_id)
        .subquery()
    )
    to_claim = (
        select(
            _seconds_between(session, _e.c.opened_at, first_claims.c.claimed_at).label("seconds")
        )
        .join(first_claims, first_claims.c.escalation_id == _e.c.id)
        .where(window)
    )
    to_resolve = select(
        _seconds_between(session, _e.c.opened_at, _e.c.closed_at).label("seconds")
    ).where(window, _e.c.status == "resolved", _e.c.closed_at.is_not(None))
    open_now, unclaimed_now = db.execute(
        select(func.count(), func.count().filter(_e.c.status == "open"))
        .select_from(_e)
        .where(_e.c.status.in_(ACTIVE_ESCALATION_STATUSES))
    ).one()
    return Overview(
        since=since,
        until=until,
        bucket=bucket,
        frequency=_frequency(session, since, until, bucket, window),
        escalations=total,
        conversations=int(started),
        escalated_conversations=int(escalated_count),
        time_to_claim=_durations(session, to_claim),
        resolution_time=_durations(session, to_resolve),
        by_level=_counts(session, _e.c.level, window),
        by_reason=_by_reason(session, since, until),
        by_team=_counts(session, _e.c.team, window),
        by_platform=_counts(session, _c.c.platform, window, join_conversations=True),
        heatmap=_heatmap(session, window),
        open_now=int(open_now),
        unclaimed_now=int(unclaimed_now),
        deliveries=outbox.stats(session=session, now=now or until),
    )


def queue(
    *,
    session: Session,
    statuses: Sequence[str] = ACTIVE_ESCALATION_STATUSES,
    team: str | None = None,
    level: str | None = None,
    platform: str | None = None,
    limit: int = 200,
) -> list[QueueItem]:
    """Open and claimed escalations, oldest first, with the conversation's platform and customer."""
    statement = (
        select(
            _e.c.id,
            _e.c.conversation_id,
            _e.c.status,
            _e.c.level,
            _e.c.score,
            _e.c.team,
            _c.c.platform,
            _c.c.customer_name,
            _e.c.opened_at,
            func.coalesce(_e.c.claimed_by_name, _e.c.claimed_by).label("claimer"),
            _e.c.claimed_at,
        )
        .select_from(_e.join(_c, _c.c.id == _e.c.conversation_id))
        .where(_e.c.status.in_(list(statuses)))
    )
    if team:
        statement = statement.where(_e.c.team == team)
    if level:
        statement = statement.where(_e.c.level == level)
    if platform:
        statement = statement.where(_c.c.platform == platform)
    statement = statement.order_by(_e.c.opened_at, _e.c.id).limit(limit)
    return [
        QueueItem(
            escalation_id=row.id,
            conversation_id=row.conversation_id,
            status=row.status,
            level=row.level,
            score=float(row.score),
            team=row.team,
            platform=row.platform,
            customer_name=row.customer_name,
            opened_at=row.opened_at,
            claimed_by=row.claimer,
            claimed_at=row.claimed_at,
        )
        for row in connection(session).execute(statement)
    ]


def queue_filters(*, session: Session) -> dict[str, list[str]]:
    """The teams, levels and platforms present among active escalations, for filter menus."""
    active = _e.c.status.in_(ACTIVE_ESCALATION_STATUSES)
    joined = _e.join(_c, _c.c.id == _e.c.conversation_id)
    db = connection(session)
    result: dict[str, list[str]] = {}
    for name, column in (("team", _e.c.team), ("level", _e.c.level), ("platform", _c.c.platform)):
        values = db.execute(
            select(column).select_from(joined).where(active, column.is_not(None)).distinct()
        ).scalars()
        result[name] = sorted(str(value) for value in values)
    return result


def conversation_escalations(*, session: Session, conversation_id: str) -> list[int]:
    """The ids of the conversation's escalations, oldest first."""
    rows = connection(session).execute(
        select(_e.c.id)
        .where(_e.c.conversation_id == conversation_id)
        .order_by(_e.c.opened_at, _e.c.id)
    )
    return [int(value) for value in rows.scalars()]
