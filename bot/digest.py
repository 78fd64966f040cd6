"""The daily hand-off digest: periods from the team's cron, the numbers, and three renderings.

A digest covers the period between two fire times of the team's `digest.cron` (read in its
`timezone`): the one posted at Tuesday 09:00 covers Monday 09:00 to Tuesday 09:00, and compares
with the period before. Which periods are due is computed from the cron and the `digests` record,
so a run missed while the service was down is posted when it comes back, exactly once.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import IO, Any, Protocol
from zoneinfo import ZoneInfo

from apscheduler.triggers.cron import CronTrigger
from sqlmodel import Session

from bot.cards import format_wait
from bot.pipeline import team_surfaces
from engine.rules import Digest, Rules
from engine.rules_loader import cron_fields
from storage import digests, outbox
from storage.db import Database
from storage.outbox import OutboxItem

log = logging.getLogger(__name__)

POST_DIGEST = "post_digest"
_SPARK = "▁▂▃▄▅▆▇█"
# How far back to look for the previous fire time, widening until two are found.
_LOOKBACKS = (timedelta(days=2), timedelta(days=9), timedelta(days=40), timedelta(days=400))


# --- periods ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Period:
    """One digest period [start, end) of a team, and the period before it for comparison."""

    team: str
    timezone: str
    start: datetime
    end: datetime
    previous_start: datetime


def digest_trigger(config: Digest) -> CronTrigger:
    """The APScheduler trigger of a team's digest (standard cron weekdays, the team's zone)."""
    return CronTrigger(timezone=ZoneInfo(config.timezone), **cron_fields(config.cron))


def fire_times(trigger: CronTrigger, after: datetime, until: datetime) -> list[datetime]:
    """Every fire time in (after, until], in UTC."""
    times: list[datetime] = []
    fire = trigger.get_next_fire_time(None, after + timedelta(microseconds=1))
    while fire is not None and fire <= until:
        times.append(fire.astimezone(UTC))
        fire = trigger.get_next_fire_time(fire, fire)
    return times


def _fires_before(trigger: CronTrigger, moment: datetime, count: int) -> list[datetime]:
    """The last `count` fire times strictly before `moment`, oldest first."""
    for lookback in _LOOKBACKS:
        times = [t for t in fire_times(trigger, moment - lookback, moment) if t < moment]
        if len(times) >= count:
            return times[-count:]
    raise ValueError("the cron fires less than once a year")


def period_ending(team: str, config: Digest, end: datetime) -> Period:
    """The period that ends at fire time `end`."""
    previous_start, start = _fires_before(digest_trigger(config), end, 2)
    return Period(team, config.timezone, start, end.astimezone(UTC), previous_start)


def latest_period(team: str, config: Digest, now: datetime) -> Period:
    """The most recent period that has ended by `now`."""
    (end,) = _fires_before(digest_trigger(config), now + timedelta(microseconds=1), 1)
    return period_ending(team, config, end)


def period_posted_on(team: str, config: Digest, day: date) -> Period:
    """The period whose digest is posted on `day` (the first fire on or after that day starts)."""
    zone = ZoneInfo(config.timezone)
    midnight = datetime.combine(day, time(0), tzinfo=zone)
    fire = digest_trigger(config).get_next_fire_time(None, midnight)
    if fire is None:
        raise ValueError(f"the digest cron of team '{team}' never fires after {day}")
    return period_ending(team, config, fire)


# --- the report ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WorstLink:
    """One of the worst conversations, with where to read it."""

    escalation_id: int
    conversation_id: str
    level: str
    score: float
    status: str
    reason: str | None
    transcript_url: str
    platform_url: str | None


@dataclass(frozen=True, slots=True)
class DigestReport:
    """What a digest says, independent of the chat surface; stored as posted."""

    team: str
    timezone: str
    period_start: datetime
    period_end: datetime
    handoffs: int
    previous_handoffs: int
    conversations: int
    by_level: tuple[tuple[str, int], ...]
    top_reasons: tuple[tuple[str, int], ...]
    claim_count: int
    claim_median_seconds: float | None
    claim_p90_seconds: float | None
    resolved_count: int
    resolution_median_seconds: float | None
    resolution_p90_seconds: float | None
    still_open: int
    expired: int
    recovered: int
    hours: tuple[int, ...]  # handoffs opened in each local hour of the day, 0-23
    claimers: tuple[tuple[str, int], ...]
    worst: tuple[WorstLink, ...]

    @property
    def change(self) -> int:
        """Hand-offs compared with the period before."""
        return self.handoffs - self.previous_handoffs

    @property
    def share(self) -> float | None:
        """Hand-offs as a share of the conversations active in the period."""
        return self.handoffs / self.conversations if self.conversations else None

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (the `digests.content` column)."""
        data = asdict(self)
        data["period_start"] = self.period_start.isoformat()
        data["period_end"] = self.period_end.isoformat()
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> DigestReport:
        """The report back from `to_json`."""
        pairs = ("by_level", "top_reasons", "claimers")
        values = dict(data)
        for key in pairs:
            values[key] = tuple((str(name), int(count)) for name, count in data[key])
        values["hours"] = tuple(int(count) for count in data["hours"])
        values["worst"] = tuple(WorstLink(**item) for item in data["worst"])
        values["period_start"] = datetime.fromisoformat(data["period_start"])
        values["period_end"] = datetime.fromisoformat(data["period_end"])
        return cls(**values)


def local_hours(timezone: str, by_utc_hour: tuple[tuple[datetime, int], ...]) -> tuple[int, ...]:
    """Counts per UTC hour folded into the 24 hours of the local day (DST-aware)."""
    zone = ZoneInfo(timezone)
    hours = [0] * 24
    for hour_start, count in by_utc_hour:
        hours[hour_start.astimezone(zone).hour] += count
    return tuple(hours)


def build_report(session: Session, period: Period, base_url: str) -> DigestReport:
    """Compute the digest of one team and period from SQL aggregates."""
    numbers = digests.digest_numbers(
        session=session,
        team=period.team,
        start=period.start,
        end=period.end,
        previous_start=period.previous_start,
    )
    base = base_url.rstrip("/")
    return DigestReport(
        team=period.team,
        timezone=period.timezone,
        period_start=period.start,
        period_end=period.end,
        handoffs=numbers.handoffs,
        previous_handoffs=numbers.previous_handoffs,
        conversations=numbers.conversations,
        by_level=numbers.by_level,
        top_reasons=numbers.top_reasons,
        claim_count=numbers.time_to_claim.count,
        claim_median_seconds=numbers.time_to_claim.median_seconds,
        claim_p90_seconds=numbers.time_to_claim.p90_seconds,
        resolved_count=numbers.resolution_time.count,
        resolution_median_seconds=numbers.resolution_time.median_seconds,
        resolution_p90_seconds=numbers.resolution_time.p90_seconds,
        still_open=numbers.still_open,
        expired=numbers.expired,
        recovered=numbers.recovered,
        hours=local_hours(period.timezone, numbers.opened_by_utc_hour),
        claimers=numbers.claimers,
        worst=tuple(
            WorstLink(
                escalation_id=item.escalation_id,
                conversation_id=item.conversation_id,
                level=item.level,
                score=item.score,
                status=item.status,
                reason=item.reason,
                transcript_url=f"{base}/conversations/{item.conversation_id}",
                platform_url=item.link,
            )
            for item in numbers.worst
        ),
    )


# --- rendering ----------------------------------------------------------------------------------


def _duration(seconds: float | None) -> str:
    return "—" if seconds is None else format_wait(seconds)


def _signed(change: int) -> str:
    return f"+{change}" if change > 0 else str(change) if change < 0 else "±0"


def _local(report: DigestReport, moment: datetime) -> str:
    return moment.astimezone(ZoneInfo(report.timezone)).strftime("%a %d %b %H:%M")


def title(report: DigestReport) -> str:
    """ "Hand-off digest · support · Mon 09 Mar 09:00 → Tue 10 Mar 09:00 (Europe/Berlin)"."""
    return (
        f"Hand-off digest · {report.team} · {_local(report, report.period_start)} → "
        f"{_local(report, report.period_end)} ({report.timezone})"
    )


def headline(report: DigestReport) -> str:
    """The one-line summary (also the notification text)."""
    share = f"{report.share:.1%} of {report.conversations} conversations" if report.share else "—"
    return f"{report.handoffs} hand-offs ({_signed(report.change)} vs the period before) · {share}"


def histogram(hours: tuple[int, ...]) -> list[str]:
    """A compact hour-of-day chart: one bar character per hour, and an hour axis under it."""
    peak = max(hours) if hours else 0
    bars = "".join(
        " " if count == 0 else _SPARK[min(len(_SPARK) - 1, (count * len(_SPARK) - 1) // peak)]
        for count in hours
    )
    return [bars, "0     6     12    18    ", "(hour of day, local time)"]


def peak_hours(hours: tuple[int, ...], limit: int = 3) -> str:
    """ "10:00 (7), 14:00 (5), 09:00 (4)": the busiest hours, most first."""
    ranked = sorted((h for h in range(24) if hours[h]), key=lambda h: (-hours[h], h))[:limit]
    return ", ".join(f"{h:02d}:00 ({hours[h]})" for h in ranked) or "—"


def _pairs(pairs: tuple[tuple[str, int], ...]) -> str:
    return ", ".join(f"{name} {count}" for name, count in pairs) or "—"


def fact_lines(report: DigestReport) -> list[tuple[str, str]]:
    """The digest's facts as (label, value) pairs, in reading order."""
    return [
        ("Hand-offs", f"{report.handoffs} ({_signed(report.change)})"),
        (
            "Share of conversations",
            f"{report.share:.1%} of {report.conversations}" if report.share is not None else "—",
        ),
        ("By level", _pairs(report.by_level)),
        ("Top reasons", _pairs(report.top_reasons)),
        (
            "Time to claim",
            f"median {_duration(report.claim_median_seconds)}, "
            f"90th {_duration(report.claim_p90_seconds)} ({report.claim_count} claimed)",
        ),
        (
            "Resolution time",
            f"median {_duration(report.resolution_median_seconds)}, "
            f"90th {_duration(report.resolution_p90_seconds)} ({report.resolved_count} resolved)",
        ),
        (
            "Unclaimed",
            f"{report.still_open} still open, {report.expired} expired, "
            f"{report.recovered} recovered by the bot",
        ),
        ("Peak hours", peak_hours(report.hours)),
        ("Claimed by", _pairs(report.claimers)),
    ]


def _worst_line(item: WorstLink) -> str:
    why = f" — {item.reason}" if item.reason else ""
    return f"#{item.escalation_id} {item.level} {item.score:.0f} ({item.status}){why}"


def render_text(report: DigestReport) -> str:
    """The digest as plain text (CLI preview and the console surface)."""
    lines = [title(report), headline(report), ""]
    width = max(len(label) for label, _ in fact_lines(report))
    lines += [f"{label:<{width}}  {value}" for label, value in fact_lines(report)]
    lines += ["", *histogram(report.hours), ""]
    lines.append("Worst conversations:" if report.worst else "Worst conversations: —")
    lines += [f"  {_worst_line(item)}  {item.transcript_url}" for item in report.worst]
    return "\n".join(lines)


def _slack_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def render_blocks(report: DigestReport) -> list[dict[str, Any]]:
    """The digest as Slack Block Kit blocks (within Slack's field limits)."""
    facts = fact_lines(report)
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": title(report)[:150]}},
        {"type": "section", "text": {"type": "mrkdwn", "text": f"*{headline(report)}*"}},
        {
            # A section holds at most 10 fields of 2000 characters each.
            "type": "section",
            "fields": [
                {"type": "mrkdwn", "text": f"*{label}*\n{_slack_escape(value)}"[:2000]}
                for label, value in facts[:10]
            ],
        },
        {
            "type": "section",
            "text": {
                "type": "mrkdwn",
                "text": "*Hand-offs by hour*\n```" + "\n".join(histogram(report.hours)) + "```",
            },
        },
    ]
    if report.worst:
        lines = [
            f"• <{item.transcript_url}|{_slack_escape(item.conversation_id)}> "
            f"{_slack_escape(_worst_line(item))}"
            for item in report.worst
        ]
        text = "*Worst conversations*\n" + "\n".join(lines)
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": text[:3000]}})
    blocks.append(
        {
            "type": "context",
            "elements": [{"type": "mrkdwn", "text": "Escalation Tracker · daily hand-off digest"}],
        }
    )
    return blocks


def render_adaptive_card(report: DigestReport) -> dict[str, Any]:
    """The digest as an Adaptive Card (version 1.5) for Teams."""
    body: list[dict[str, Any]] = [
        {
            "type": "TextBlock",
            "text": title(report),
            "weight": "Bolder",
            "size": "Medium",
            "wrap": True,
        },
        {"type": "TextBlock", "text": headline(report), "wrap": True},
        {
            "type": "FactSet",
            "facts": [{"title": label, "value": value} for label, value in fact_lines(report)],
        },
        {"type": "TextBlock", "text": "Hand-offs by hour", "weight": "Bolder", "wrap": True},
        {
            "type": "TextBlock",
            "text": "\n\n".join(histogram(report.hours)),
            "fontType": "Monospace",
            "wrap": True,
        },
    ]
    if report.worst:
        body.append(
            {"type": "TextBlock", "text": "Worst conversations", "weight": "Bolder", "wrap": True}
        )
        body.append(
            {
                "type": "TextBlock",
                "text": "\n".join(
                    f"- [{item.conversation_id}]({item.transcript_url}) {_worst_line(item)}"
                    for item in report.worst
                ),
                "wrap": True,
            }
        )
    return {
        "type": "AdaptiveCard",
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "version": "1.5",
        "body": body,
    }


# --- posting ------------------------------------------------------------------------------------


class DigestPublisher(Protocol):
    """A chat surface that can post a digest message; raises the `bot.notifier` errors."""

    surface: str

    async def post_digest(self, report: DigestReport, channel: str) -> str:
        """Post the digest to the channel; returns the message id."""
        ...


class ConsoleDigestPublisher:
    """Prints digests (the surface used when no chat app is configured)."""

    surface = "console"

    def __init__(self, stream: IO[str] | None = None) -> None:
        self._stream = stream

    async def post_digest(self, report: DigestReport, channel: str) -> str:
        """Write the text rendering."""
        stream = self._stream or sys.stdout
        stream.write(render_text(report) + "\n")
        stream.flush()
        return f"{report.team}:{report.period_start.isoformat()}"


class SlackDigestPublisher:
    """Posts digests with the Slack Web API client the Slack app already has."""

    surface = "slack"

    def __init__(self, client: Any) -> None:
        self._client = client

    async def post_digest(self, report: DigestReport, channel: str) -> str:
        """chat.postMessage with the Block Kit rendering."""
        from bot.slack.notifier import delivery_error

        try:
            response = await self._client.chat_postMessage(
                channel=channel,
                text=headline(report),
                blocks=render_blocks(report),
                unfurl_links=False,
                unfurl_media=False,
            )
        except Exception as error:
            raise delivery_error(error) from error
        return str(response["ts"])


def digest_targets(rules: Rules, team: str, surfaces: frozenset[str]) -> list[tuple[str, str]]:
    """Where a team's digest goes: the team's own channels (the console when none is usable)."""
    return team_surfaces(rules, team, surfaces)


def record_and_enqueue(
    session: Session,
    report: DigestReport,
    targets: list[tuple[str, str]],
    *,
    now: datetime,
    source: str,
    force: bool = False,
) -> int | None:
    """Record the digest and queue its posts in one transaction; None when it was posted before.

    With `force` (an admin re-sending) a recorded digest is queued again with the new numbers.
    """
    digest_id = digests.record_digest(
        session=session,
        team=report.team,
        period_start=report.period_start,
        period_end=report.period_end,
        now=now,
        source=source,
        content=report.to_json(),
    )
    if digest_id is None:
        if not force:
            return None
        existing = digests.get_digest(
            session=session, team=report.team, period_start=report.period_start
        )
        assert existing is not None
        digest_id = existing.id
    for surface, channel in targets:
        outbox.enqueue(
            session=session,
            kind=POST_DIGEST,
            surface=surface,
            escalation_id=None,
            payload={"digest_id": digest_id, "channel": channel, "content": report.to_json()},
            due_at=now,
            dedupe_key=f"digest:{digest_id}:{surface}:{channel}",
            now=now,
        )
    return digest_id


def due_periods(session: Session, rules: Rules, now: datetime) -> list[Period]:
    """For each team with a digest, its latest ended period when that one is not recorded yet.

    Only the latest: after a long outage the team gets one digest, not a backlog.
    """
    due: list[Period] = []
    for team, config in sorted(rules.teams.items()):
        if config.digest is None:
            continue
        period = latest_period(team, config.digest, now)
        if digests.get_digest(session=session, team=team, period_start=period.start) is None:
            due.append(period)
    return due


def run_digests(
    database: Database,
    rules: Rules,
    surfaces: frozenset[str],
    base_url: str,
    now: datetime,
) -> list[int]:
    """The digest job: post every due digest; returns the ids of the digests recorded now."""
    with database.session(read_only=True) as session:
        periods = due_periods(session, rules, now)
    posted: list[int] = []
    for period in periods:
        # One transaction per team: a failure for one team does not hold back the others.
        with database.session() as session:
            report = build_report(session, period, base_url)
            targets = digest_targets(rules, period.team, surfaces)
            digest_id = record_and_enqueue(session, report, targets, now=now, source="schedule")
        if digest_id is not None:
            log.info("digest of team %s for %s recorded", period.team, period.start.isoformat())
            posted.append(digest_id)
    return posted


class DigestDelivery:
    """Delivers `post_digest` outbox rows (the delivery worker hands them over)."""

    def __init__(self, publishers: Mapping[str, DigestPublisher]) -> None:
        self._publishers = publishers

    async def deliver(self, item: OutboxItem) -> None:
        """Post the digest the row carries; raises DeliveryError subclasses."""
        from bot.notifier import Forbidden

        publisher = self._publishers.get(item.surface or "")
        if publisher is None:
            raise Forbidden(f"no digest publisher for surface {item.surface!r}")
        report = DigestReport.from_json(item.payload["content"])
        await publisher.post_digest(report, str(item.payload.get("channel", "")))


def report_json(report: DigestReport) -> str:
    """The report as indented JSON (the CLI's --format json)."""
    return json.dumps(report.to_json(), indent=2, ensure_ascii=False)


def preview_or_post(
    database: Database,
    rules: Rules,
    team: str,
    *,
    day: date | None,
    post: bool,
    force: bool,
    base_url: str,
    now: datetime,
    render: Callable[[DigestReport], str] = render_text,
) -> tuple[int, str]:
    """The `escalations digest` command: (exit status, what to print)."""
    config = rules.teams.get(team)
    if config is None:
        return 2, f"error: team '{team}' is not defined; defined teams: {', '.join(rules.teams)}"
    digest = config.digest or Digest()
    period = period_posted_on(team, digest, day) if day else latest_period(team, digest, now)
    if period.end > now:
        return 2, f"error: the digest for {day} is not due until {period.end.isoformat()}"
    with database.session() as session:
        report = build_report(session, period, base_url)
        lines = [render(report)]
        if post:
            targets = digest_targets(rules, team, frozenset({"slack", "teams"}))
            digest_id = record_and_enqueue(
                session, report, targets, now=now, source="cli", force=force
            )
            if digest_id is None:
                posted = digests.get_digest(session=session, team=team, period_start=period.start)
                assert posted is not None
                lines.append(
                    f"\nAlready posted at {posted.posted_at.isoformat()} ({posted.source}); "
                    "add --force to post it again."
                )
            else:
                where = ", ".join(f"{surface} {channel}" for surface, channel in targets)
                lines.append(f"\nQueued for {where}; the running service delivers it.")
    return 0, "\n".join(lines)
