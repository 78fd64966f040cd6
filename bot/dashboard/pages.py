"""The dashboard's HTML: plain server-rendered pages, every value escaped, no inline styles."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from html import escape
from typing import Any

from bot.cards import format_wait
from bot.dashboard import charts
from bot.dashboard.model import ExplainedTurn, Turn
from storage.dashboard import Overview, QueueItem
from storage.escalations import EscalationRecord, HandoffEventRecord

RANGES = {"24h": "Last 24 hours", "7d": "Last 7 days", "30d": "Last 30 days"}
NAV = (("/", "Overview"), ("/queue", "Queue"), ("/rules", "Rules"))


def _attr(value: object) -> str:
    return escape(str(value), quote=True)


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC") if moment else "—"


def _seconds(value: float | None) -> str:
    return "—" if value is None else format_wait(value)


def _transition(step: HandoffEventRecord) -> str:
    return " → ".join(status for status in (step.from_status, step.to_status) if status)


def layout(title: str, body: str, *, csrf: str | None, path: str, notice: str | None = None) -> str:
    """The page shell: navigation, logout form, one notice line and the body."""
    nav = ""
    if csrf is not None:
        links = "".join(
            f'<a href="{href}"{" aria-current=page" if href == path else ""}>{name}</a>'
            for href, name in NAV
        )
        nav = (
            f'<nav>{links}<form method="post" action="/logout" class="logout">'
            f'<input type="hidden" name="csrf" value="{_attr(csrf)}">'
            '<button type="submit">Log out</button></form></nav>'
        )
    flash = f'<p class="notice" role="status">{escape(notice)}</p>' if notice else ""
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta name="color-scheme" content="light dark">'
        f"<title>{escape(title)} · Escalation Tracker</title>"
        '<link rel="icon" href="/dashboard/static/favicon.svg" type="image/svg+xml">'
        '<link rel="stylesheet" href="/dashboard/static/dashboard.css">'
        '<script src="/dashboard/static/dashboard.js" defer></script>'
        f'</head><body><header><h1>Escalation Tracker</h1>{nav}</header><main id="main">'
        f"<h2>{escape(title)}</h2>{flash}{body}</main></body></html>"
    )


def login_page(*, next_path: str, csrf: str, error: str | None) -> str:
    """The login form (the password is the configured admin token)."""
    problem = f'<p class="error" role="alert">{escape(error)}</p>' if error else ""
    body = (
        f'{problem}<form method="post" action="/login" class="login">'
        f'<input type="hidden" name="csrf" value="{_attr(csrf)}">'
        f'<input type="hidden" name="next" value="{_attr(next_path)}">'
        '<label for="password">Admin token</label>'
        '<input id="password" name="password" type="password" autocomplete="current-password" '
        "required autofocus>"
        '<button type="submit">Log in</button></form>'
        "<p>Transcripts hold customer data: the dashboard needs the admin token.</p>"
    )
    return layout("Log in", body, csrf=None, path="/login")


def unconfigured_page(variable: str) -> str:
    """Shown instead of every page while no admin token is configured."""
    body = (
        f'<p class="error">The dashboard is locked: no admin token is configured. Set '
        f"<code>{escape(variable)}</code> in the service's environment and restart it; "
        "then log in with that token.</p>"
    )
    return layout("Dashboard not configured", body, csrf=None, path="")


def _tile(label: str, value: str, test_id: str, detail: str = "") -> str:
    extra = f"<small>{escape(detail)}</small>" if detail else ""
    return (
        f'<div class="tile"><span>{escape(label)}</span>'
        f'<strong data-testid="{test_id}">{escape(value)}</strong>{extra}</div>'
    )


def overview_page(
    data: Overview, items: Sequence[QueueItem], *, now: datetime, range_key: str, csrf: str
) -> str:
    """Figures, charts and the open queue for one window."""
    rate = "—" if data.handoff_rate is None else f"{data.handoff_rate * 100:.1f}%"
    ranges = "".join(
        f'<option value="{key}"{" selected" if key == range_key else ""}>{name}</option>'
        for key, name in RANGES.items()
    )
    buckets = "".join(
        f'<option value="{b}"{" selected" if b == data.bucket else ""}>per {b}</option>'
        for b in ("hour", "day")
    )
    controls = (
        '<form method="get" action="/" class="filters">'
        f'<label>Range <select name="range">{ranges}</select></label>'
        f'<label>Buckets <select name="bucket">{buckets}</select></label>'
        '<button type="submit">Show</button></form>'
        f'<p class="window">{_when(data.since)} — {_when(data.until)}</p>'
    )
    tiles = (
        '<div class="tiles">'
        + _tile("Escalations", str(data.escalations), "escalations")
        + _tile(
            "Hand-off rate",
            rate,
            "handoff-rate",
            f"{data.escalated_conversations} of {data.conversations} conversations",
        )
        + _tile(
            "Time to claim (median)",
            _seconds(data.time_to_claim.median_seconds),
            "claim-median",
            f"90th percentile {_seconds(data.time_to_claim.p90_seconds)}",
        )
        + _tile(
            "Resolution time (median)",
            _seconds(data.resolution_time.median_seconds),
            "resolution-median",
            f"90th percentile {_seconds(data.resolution_time.p90_seconds)}",
        )
        + _tile("Open now", str(data.open_now), "open-now")
        + _tile("Unclaimed now", str(data.unclaimed_now), "unclaimed-now")
        + _tile(
            "Deliveries waiting",
            str(data.deliveries.depth),
            "deliveries-waiting",
            f"oldest {_seconds(data.deliveries.oldest_age_seconds)}"
            + (f" · {data.deliveries.failed} given up" if data.deliveries.failed else ""),
        )
        + "</div>"
    )
    breakdowns = "".join(
        f'<section class="card"><h3>By {name}</h3>{charts.bar_list(counts, f"By {name}")}</section>'
        for name, counts in (
            ("level", data.by_level),
            ("reason", data.by_reason),
            ("team", data.by_team),
            ("platform", data.by_platform),
        )
    )
    body = (
        controls
        + tiles
        + f'<section class="card wide"><h3>Hand-offs per {data.bucket}</h3>'
        + charts.frequency_chart(data.frequency, data.bucket)
        + "</section>"
        + f'<div class="grid">{breakdowns}</div>'
        + '<section class="card wide"><h3>Peak hours</h3>'
        + charts.heatmap(data.heatmap)
        + "</section>"
        + '<section class="card wide"><h3>Open and unclaimed now</h3>'
        + queue_table(items, now=now, csrf=csrf, with_actions=False)
        + "</section>"
    )
    return layout("Overview", body, csrf=csrf, path="/")


def _action(escalation_id: int, verb: str, csrf: str, back: str) -> str:
    return (
        f'<form method="post" action="/escalations/{escalation_id}/{verb}" class="inline">'
        f'<input type="hidden" name="csrf" value="{_attr(csrf)}">'
        f'<input type="hidden" name="next" value="{_attr(back)}">'
        f'<button type="submit" data-action="{verb}">{verb.capitalize()}</button></form>'
    )


def actions(item_id: int, status: str, csrf: str, back: str) -> str:
    """The buttons that apply to an escalation in this status."""
    if status == "open":
        return _action(item_id, "claim", csrf, back)
    if status == "claimed":
        return _action(item_id, "release", csrf, back) + _action(item_id, "resolve", csrf, back)
    return ""


def queue_table(
    items: Sequence[QueueItem],
    *,
    now: datetime,
    csrf: str,
    with_actions: bool,
    back: str = "/queue",
) -> str:
    """Open escalations with level, age, team and claimer."""
    if not items:
        return '<p class="empty" data-testid="queue-empty">Nobody is waiting.</p>'
    head = (
        "<tr><th>#</th><th>Conversation</th><th>Status</th><th>Level</th><th>Age</th>"
        "<th>Team</th><th>Platform</th><th>Claimed by</th>"
        + ("<th></th>" if with_actions else "")
        + "</tr>"
    )
    rows = []
    for item in items:
        age = format_wait((now - item.opened_at).total_seconds())
        buttons = (
            f"<td>{actions(item.escalation_id, item.status, csrf, back)}</td>"
            if with_actions
            else ""
        )
        who = item.customer_name or item.conversation_id
        rows.append(
            f'<tr data-escalation="{item.escalation_id}" class="status-{_attr(item.status)}">'
            f"<td>{item.escalation_id}</td>"
            f'<td><a href="/conversations/{_attr(item.conversation_id)}">{escape(who)}</a></td>'
            f"<td>{escape(item.status)}</td>"
            f'<td><span class="level level-{_attr(item.level)}">{escape(item.level)}</span></td>'
            f'<td data-testid="age">{escape(age)}</td><td>{escape(item.team or "—")}</td>'
            f"<td>{escape(item.platform or '—')}</td><td>{escape(item.claimed_by or '—')}</td>"
            f"{buttons}</tr>"
        )
    return f'<table class="queue"><thead>{head}</thead><tbody>{"".join(rows)}</tbody></table>'


def queue_page(
    items: Sequence[QueueItem],
    *,
    now: datetime,
    csrf: str,
    filters: dict[str, list[str]],
    chosen: dict[str, str],
    back: str,
    notice: str | None,
) -> str:
    """The live queue with filters and claim/release/resolve buttons."""
    menus = []
    for name, values in filters.items():
        options = '<option value="">all</option>' + "".join(
            f'<option value="{_attr(v)}"{" selected" if chosen.get(name) == v else ""}>'
            f"{escape(v)}</option>"
            for v in values
        )
        menus.append(f'<label>{name.capitalize()} <select name="{name}">{options}</select></label>')
    form = (
        f'<form method="get" action="/queue" class="filters">{"".join(menus)}'
        '<button type="submit">Filter</button></form>'
    )
    table = queue_table(items, now=now, csrf=csrf, with_actions=True, back=back)
    # dashboard.js re-fetches the page and swaps this element in place.
    body = f'{form}<div id="live" data-refresh="15">{table}</div>'
    return layout("Queue", body, csrf=csrf, path="/queue", notice=notice)


def conversation_page(
    *,
    conversation_id: str,
    meta: dict[str, Any],
    turns: Sequence[Turn],
    thresholds: Sequence[tuple[str, float]],
    history: Sequence[tuple[EscalationRecord, Sequence[HandoffEventRecord]]],
    csrf: str,
    notice: str | None,
) -> str:
    """The transcript as a chat with per-turn signal markers, the score line and hand-offs."""
    bubbles = []
    for index, turn in enumerate(turns, start=1):
        event = turn.stored.event
        who = event.role.value if event.role else event.type.value
        badges = "".join(
            f'<li class="marker signal-{_attr(m.signal)}" data-signal="{_attr(m.signal)}">'
            f"⚠ {escape(m.text)} <small>(+{m.points:g})</small></li>"
            for m in turn.markers
        )
        if event.fallback:
            badges += '<li class="marker unresolved" data-signal="unresolved">Unresolved query</li>'
        decision = (
            f'<p class="decision" data-decision="{_attr(turn.decision)}">'
            f"{escape(turn.decision_text)}</p>"
            if turn.decision
            else ""
        )
        score = "" if turn.stored.score is None else f"score {turn.stored.score:.0f}"
        bubbles.append(
            f'<li class="turn role-{_attr(who)}" id="turn-{index}" '
            f'data-event-id="{_attr(event.event_id)}" data-turn="{index}">'
            f'<div class="meta">{escape(who)} · {_when(event.timestamp)} · {score}</div>'
            f'<div class="bubble">{escape(event.text or event.type.value)}</div>'
            + (f'<ul class="markers">{badges}</ul>' if badges else "")
            + decision
            + "</li>"
        )
    marks = [index for index, turn in enumerate(turns) if turn.markers]
    chart = charts.score_line([turn.stored.score or 0.0 for turn in turns], thresholds, marks)
    details = "".join(
        f"<dt>{escape(key)}</dt><dd>{escape(str(value))}</dd>"
        for key, value in meta.items()
        if value
    )
    hand_offs = []
    for record, steps in history:
        lines = "".join(
            f'<tr data-kind="{_attr(step.kind)}"><td>{_when(step.at)}</td>'
            f"<td>{escape(step.kind)}</td>"
            f"<td>{escape(step.actor_name or step.actor_id or '—')}</td>"
            f"<td>{escape(step.surface or '—')}</td>"
            f"<td>{escape(_transition(step))}</td></tr>"
            for step in steps
        )
        hand_offs.append(
            f'<section class="card" data-escalation="{record.id}"><h3>Escalation #{record.id} · '
            f"{escape(record.level)} · {escape(record.status)}</h3>"
            f"{actions(record.id, record.status, csrf, f'/conversations/{conversation_id}')}"
            "<table><thead><tr><th>When</th><th>Step</th><th>Who</th><th>Where</th>"
            f"<th>Status</th></tr></thead><tbody>{lines}</tbody></table></section>"
        )
    body = (
        f'<dl class="facts">{details}</dl>'
        f'<section class="card wide"><h3>Score</h3>{chart}</section>'
        f'<div class="columns"><ol class="chat">{"".join(bubbles)}</ol>'
        f'<div class="handoffs"><h3>Hand-offs</h3>'
        f"{''.join(hand_offs) or '<p class=empty>Never escalated.</p>'}</div></div>"
    )
    return layout(f"Conversation {conversation_id}", body, csrf=csrf, path="", notice=notice)


def rules_page(
    *,
    rules_yaml: str,
    path: str,
    loaded_at: datetime,
    rejection: tuple[datetime, Sequence[str]] | None,
    csrf: str,
    pasted: str,
    explained: Sequence[ExplainedTurn] | None,
    summary: str | None,
    error: str | None,
) -> str:
    """The rules in force, the last rejection, and the try-it box."""
    rejected = '<p data-testid="no-rejection">No rules file has been rejected.</p>'
    if rejection is not None:
        at, problems = rejection
        items = "".join(f"<li>{escape(problem)}</li>" for problem in problems)
        rejected = (
            f'<p class="error">Rejected at {_when(at)}; the rules below stayed in force.</p>'
            f'<ul class="problems" data-testid="rejection">{items}</ul>'
        )
    result = ""
    if error:
        result = f'<p class="error" role="alert" data-testid="try-error">{escape(error)}</p>'
    elif explained is not None:
        rows = "".join(
            f"<tr><td>{escape(turn.event_id)}</td><td>{escape(turn.who)}</td>"
            f"<td>{turn.score:.1f}</td><td>{escape(turn.level or '-')}</td>"
            f"<td>{escape(', '.join(turn.moved))}</td><td>{escape(turn.text)}</td>"
            f"<td>{escape(turn.decision or '')}</td></tr>"
            for turn in explained
        )
        result = (
            f'<pre data-testid="try-summary">{escape(summary or "")}</pre>'
            '<table class="explain"><thead><tr><th>Event</th><th>Who</th><th>Score</th>'
            "<th>Level</th><th>Signals moved</th><th>Text</th><th>Decision</th></tr></thead>"
            f"<tbody>{rows}</tbody></table>"
        )
    body = (
        f'<p>Loaded from <code>{escape(path)}</code> at <span data-testid="loaded-at">'
        f"{_when(loaded_at)}</span>.</p>"
        f'<section class="card wide"><h3>Last rejected file</h3>{rejected}</section>'
        '<section class="card wide"><h3>Try it</h3>'
        "<p>Paste one conversation in the generic JSON format; it runs through the rules in "
        "force, nothing is stored.</p>"
        '<form method="post" action="/rules/try">'
        f'<input type="hidden" name="csrf" value="{_attr(csrf)}">'
        '<textarea name="conversation" rows="10" spellcheck="false" '
        f'aria-label="Conversation JSON">{escape(pasted)}</textarea>'
        f'<button type="submit">Run</button></form>{result}</section>'
        f'<section class="card wide"><h3>Rules in force</h3><pre class="rules">'
        f"{escape(rules_yaml)}</pre></section>"
    )
    return layout("Rules", body, csrf=csrf, path="/rules")


def not_found_page(what: str, csrf: str) -> str:
    """A 404 page inside the dashboard."""
    return layout("Not found", f'<p class="error">{escape(what)}</p>', csrf=csrf, path="")
