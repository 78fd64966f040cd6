"""The dashboard's HTTP handlers: pages, the JSON API behind them, login and actions."""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Literal
from urllib.parse import quote, urlencode

import yaml
from aiohttp import web
from sqlmodel import Session

from bot.app import SERVICE_KEY, Service
from bot.dashboard import model, pages
from bot.dashboard.auth import (
    LOGIN_CSRF_COOKIE,
    SESSION_COOKIE,
    TOKEN_ENV,
    DashboardAuth,
    DashboardSession,
    same_secret,
)
from bot.handoff import Actor
from bot.replay import run_conversation
from connectors.base import BadPayload
from connectors.generic import parse_generic_object
from storage import conversations, escalations
from storage import dashboard as figures

AUTH_KEY: web.AppKey[DashboardAuth] = web.AppKey("dashboard_auth")
ADMIN = Actor(surface="dashboard", user_id="admin", display_name="dashboard admin")
RANGE_SPANS = {"24h": timedelta(hours=24), "7d": timedelta(days=7), "30d": timedelta(days=30)}
# Transcripts are customer data: no caching anywhere, no framing, only our own assets.
SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Guarded = Callable[[web.Request, DashboardSession | None], Awaitable[web.StreamResponse]]


def _html(text: str, status: int = 200) -> web.Response:
    return web.Response(
        text=text, content_type="text/html", status=status, headers=SECURITY_HEADERS
    )


def _json(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, headers={"Cache-Control": "no-store"})


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat().replace("+00:00", "Z") if moment else None


def _local_path(candidate: str | None, default: str = "/") -> str:
    # Only same-site paths: "//evil.example" or "https://..." would make /login an open redirect.
    if candidate and candidate.startswith("/") and not candidate.startswith("//"):
        return candidate
    return default


async def _in_thread(service: Service, work: Callable[[Session], Any]) -> Any:
    def run() -> Any:
        with service.database.session(read_only=True) as session:
            return work(session)

    return await asyncio.to_thread(run)


def guard(kind: Literal["page", "api"], handler: Guarded) -> Handler:
    """Let the request through only with a valid session (or, for the API, a bearer token).

    Pages without one redirect to the login form; API calls get 401 JSON. POSTs made with a
    session cookie must carry the session's CSRF token (form field `csrf` or `X-CSRF-Token`).
    """

    async def checked(request: web.Request) -> web.StreamResponse:
        auth = request.app[AUTH_KEY]
        if auth.token is None:
            message = f"the dashboard is locked until {TOKEN_ENV} is set on the service"
            if kind == "api":
                return _json({"error": message}, 503)
            return _html(pages.unconfigured_page(TOKEN_ENV), 503)
        if kind == "api" and auth.bearer_ok(request.headers.get("Authorization")):
            return await handler(request, None)
        session = auth.signer.read(request.cookies.get(SESSION_COOKIE), auth.clock())
        if session is None:
            if kind == "api":
                return _json({"error": "log in, or send Authorization: Bearer <token>"}, 401)
            if request.method != "GET":
                raise web.HTTPSeeOther("/login")
            raise web.HTTPSeeOther("/login?" + urlencode({"next": request.path_qs}))
        if request.method == "POST":
            given = request.headers.get("X-CSRF-Token")
            if given is None and request.content_type in (
                "application/x-www-form-urlencoded",
                "multipart/form-data",
            ):
                given = str((await request.post()).get("csrf", ""))
            if not given or not same_secret(given, session.csrf):
                if kind == "api":
                    return _json({"error": "missing or wrong CSRF token"}, 403)
                return _html(pages.not_found_page("The form expired; reload the page.", ""), 403)
        return await handler(request, session)

    return checked


def page(handler: Guarded) -> Handler:
    """A page handler behind the login."""
    return guard("page", handler)


def api(handler: Guarded) -> Handler:
    """A JSON API handler behind the login or a bearer token."""
    return guard("api", handler)


# --- login ------------------------------------------------------------------------------------


def _login_form(request: web.Request, error: str | None, status: int = 200) -> web.Response:
    auth = request.app[AUTH_KEY]
    # Double-submit token: the form field must equal this cookie, which another site cannot read.
    csrf = request.cookies.get(LOGIN_CSRF_COOKIE) or _fresh_token()
    next_path = _local_path(request.query.get("next") or None)
    response = _html(pages.login_page(next_path=next_path, csrf=csrf, error=error), status)
    response.set_cookie(
        LOGIN_CSRF_COOKIE,
        csrf,
        httponly=True,
        samesite="Strict",
        secure=auth.secure_cookies,
        path="/login",
    )
    return response


def _fresh_token() -> str:
    return secrets.token_urlsafe(24)


async def login_form(request: web.Request) -> web.StreamResponse:
    """GET /login."""
    if request.app[AUTH_KEY].token is None:
        return _html(pages.unconfigured_page(TOKEN_ENV), 503)
    return _login_form(request, None)


async def login(request: web.Request) -> web.StreamResponse:
    """POST /login: the admin token opens a session; failures are throttled per address."""
    auth = request.app[AUTH_KEY]
    if auth.token is None:
        return _html(pages.unconfigured_page(TOKEN_ENV), 503)
    now = auth.clock()
    address = request.remote or "unknown"
    wait = auth.throttle.retry_after(address, now)
    if wait is not None:
        response = _login_form(request, "Too many failed attempts; try again later.", 429)
        response.headers["Retry-After"] = str(int(wait))
        return response
    form = await request.post()
    cookie_csrf = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if not cookie_csrf or not same_secret(str(form.get("csrf", "")), cookie_csrf):
        return _login_form(request, "The form expired; please try again.", 403)
    if not auth.password_ok(str(form.get("password", ""))):
        auth.throttle.failed(address, now)
        return _login_form(request, "That token is not right.", 401)
    auth.throttle.succeeded(address)
    value, _ = auth.signer.issue(now)
    response = web.HTTPSeeOther(_local_path(str(form.get("next", "")) or None))
    response.set_cookie(
        SESSION_COOKIE,
        value,
        max_age=int(auth.signer.lifetime.total_seconds()),
        httponly=True,
        samesite="Strict",
        secure=auth.secure_cookies,
        path="/",
    )
    response.del_cookie(LOGIN_CSRF_COOKIE, path="/login")
    raise response


async def logout(request: web.Request, session: DashboardSession | None) -> web.StreamResponse:
    """POST /logout: forget the session cookie."""
    response = web.HTTPSeeOther("/login")
    response.del_cookie(SESSION_COOKIE, path="/")
    raise response


# --- overview ---------------------------------------------------------------------------------


def _window(request: web.Request, now: datetime) -> tuple[str, datetime, datetime, figures.Bucket]:
    range_key = request.query.get("range", "24h")
    if range_key not in RANGE_SPANS:
        raise web.HTTPBadRequest(text=f"range must be one of {', '.join(RANGE_SPANS)}")
    bucket_name = request.query.get("bucket") or ("hour" if range_key == "24h" else "day")
    if bucket_name not in figures.BUCKETS:
        raise web.HTTPBadRequest(text="bucket must be hour or day")
    bucket: figures.Bucket = "hour" if bucket_name == "hour" else "day"
    # Whole buckets: the window ends where the current hour (or day) ends.
    end = now.astimezone(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    if bucket == "day":
        end = end.replace(hour=0) + timedelta(days=1) if end.hour else end
    since = _query_time(request, "since")
    until = _query_time(request, "until") or end
    return range_key, since or until - RANGE_SPANS[range_key], until, bucket


def _query_time(request: web.Request, name: str) -> datetime | None:
    raw = request.query.get(name)
    if not raw:
        return None
    try:
        moment = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise web.HTTPBadRequest(text=f"{name}: expected an ISO 8601 time, got {raw!r}") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _durations_json(value: figures.Durations) -> dict[str, Any]:
    return {"count": value.count, "median": value.median_seconds, "p90": value.p90_seconds}


def _counts_json(counts: tuple[figures.Count, ...]) -> list[dict[str, Any]]:
    return [{"key": item.key, "count": item.count} for item in counts]


def overview_json(data: figures.Overview) -> dict[str, Any]:
    """The overview as the API returns it."""
    return {
        "since": _iso(data.since),
        "until": _iso(data.until),
        "bucket": data.bucket,
        "escalations": data.escalations,
        "conversations": data.conversations,
        "escalated_conversations": data.escalated_conversations,
        "handoff_rate": data.handoff_rate,
        "time_to_claim_seconds": _durations_json(data.time_to_claim),
        "resolution_time_seconds": _durations_json(data.resolution_time),
        "frequency": [{"start": _iso(p.start), "count": p.count} for p in data.frequency],
        "by_level": _counts_json(data.by_level),
        "by_reason": _counts_json(data.by_reason),
        "by_team": _counts_json(data.by_team),
        "by_platform": _counts_json(data.by_platform),
        "heatmap": {"weekdays": list(figures.WEEKDAYS), "counts": [list(r) for r in data.heatmap]},
        "open_now": data.open_now,
        "unclaimed_now": data.unclaimed_now,
        "deliveries": {
            "waiting": data.deliveries.depth,
            "oldest_age_seconds": data.deliveries.oldest_age_seconds,
            "given_up": data.deliveries.failed,
        },
    }


def queue_json(items: list[figures.QueueItem], now: datetime) -> list[dict[str, Any]]:
    """Queue rows as the API returns them."""
    return [
        {
            "escalation_id": item.escalation_id,
            "conversation_id": item.conversation_id,
            "status": item.status,
            "level": item.level,
            "score": item.score,
            "team": item.team,
            "platform": item.platform,
            "customer_name": item.customer_name,
            "opened_at": _iso(item.opened_at),
            "age_seconds": round((now - item.opened_at).total_seconds(), 3),
            "claimed_by": item.claimed_by,
            "claimed_at": _iso(item.claimed_at),
        }
        for item in items
    ]


async def _overview(
    request: web.Request,
) -> tuple[str, figures.Overview, list[figures.QueueItem], datetime]:
    service = request.app[SERVICE_KEY]
    now = request.app[AUTH_KEY].clock()
    range_key, since, until, bucket = _window(request, now)

    def work(session: Session) -> tuple[figures.Overview, list[figures.QueueItem]]:
        data = figures.overview(session=session, since=since, until=until, bucket=bucket, now=now)
        return data, figures.queue(session=session)

    data, items = await _in_thread(service, work)
    return range_key, data, items, now


async def overview_page(
    request: web.Request, session: DashboardSession | None
) -> web.StreamResponse:
    """GET /: the overview."""
    assert session is not None
    range_key, data, items, now = await _overview(request)
    return _html(pages.overview_page(data, items, now=now, range_key=range_key, csrf=session.csrf))


async def overview_api(
    request: web.Request, session: DashboardSession | None
) -> web.StreamResponse:
    """GET /api/v1/overview."""
    _, data, _, _ = await _overview(request)
    return _json(overview_json(data))


# --- queue ------------------------------------------------------------------------------------


async def _queue(
    request: web.Request,
) -> tuple[list[figures.QueueItem], dict[str, list[str]], dict[str, str], datetime]:
    service = request.app[SERVICE_KEY]
    chosen = {name: request.query.get(name, "") for name in ("team", "level", "platform")}
    status = request.query.get("status")
    statuses = (status,) if status in ("open", "claimed") else ("open", "claimed")

    def work(session: Session) -> tuple[list[figures.QueueItem], dict[str, list[str]]]:
        items = figures.queue(
            session=session,
            statuses=statuses,
            team=chosen["team"] or None,
            level=chosen["level"] or None,
            platform=chosen["platform"] or None,
        )
        return items, figures.queue_filters(session=session)

    items, filters = await _in_thread(service, work)
    return items, filters, chosen, request.app[AUTH_KEY].clock()


async def queue_page(request: web.Request, session: DashboardSession | None) -> web.StreamResponse:
    """GET /queue."""
    assert session is not None
    items, filters, chosen, now = await _queue(request)
    text = pages.queue_page(
        items,
        now=now,
        csrf=session.csrf,
        filters=filters,
        chosen=chosen,
        back=request.path_qs,
        notice=request.query.get("notice"),
    )
    return _html(text)


async def queue_api(request: web.Request, session: DashboardSession | None) -> web.StreamResponse:
    """GET /api/v1/queue."""
    items, _, _, now = await _queue(request)
    return _json({"escalations": queue_json(items, now)})


# --- conversation -----------------------------------------------------------------------------


async def _conversation(request: web.Request) -> dict[str, Any] | None:
    service = request.app[SERVICE_KEY]
    conversation_id = request.match_info["conversation_id"]

    def work(session: Session) -> dict[str, Any] | None:
        record = conversations.get_conversation(session=session, conversation_id=conversation_id)
        if record is None:
            return None
        events = conversations.transcript(session=session, conversation_id=conversation_id)
        history = []
        for escalation in escalations.list_escalations(
            session=session, conversation_id=conversation_id, oldest_first=True
        ):
            steps = escalations.handoff_history(session=session, escalation_id=escalation.id)
            history.append((escalation, steps))
        return {"record": record, "turns": model.turns(events), "history": history}

    found: dict[str, Any] | None = await _in_thread(service, work)
    return found


def _meta(record: conversations.ConversationRecord) -> dict[str, Any]:
    customer = record.meta.customer
    return {
        "platform": record.meta.platform,
        "customer": customer.name or customer.id,
        "tier": customer.tier,
        "status": record.status,
        "score": f"{record.score:.0f}",
        "level": record.level,
        "started": _iso(record.first_event_at),
        "last event": _iso(record.last_event_at),
    }


async def conversation_page(
    request: web.Request, session: DashboardSession | None
) -> web.StreamResponse:
    """GET /conversations/{id}: the transcript page the cards link to."""
    assert session is not None
    found = await _conversation(request)
    conversation_id = request.match_info["conversation_id"]
    if found is None:
        text = pages.not_found_page(f"No conversation {conversation_id!r} is stored.", session.csrf)
        return _html(text, 404)
    rules = request.app[SERVICE_KEY].rules.current()
    text = pages.conversation_page(
        conversation_id=conversation_id,
        meta=_meta(found["record"]),
        turns=found["turns"],
        thresholds=[(level.name, level.min_score) for level in rules.levels],
        history=found["history"],
        csrf=session.csrf,
        notice=request.query.get("notice"),
    )
    return _html(text)


async def conversation_api(
    request: web.Request, session: DashboardSession | None
) -> web.StreamResponse:
    """GET /api/v1/conversations/{id}."""
    found = await _conversation(request)
    if found is None:
        return _json({"error": "no such conversation"}, 404)
    record: conversations.ConversationRecord = found["record"]
    turns: list[model.Turn] = found["turns"]
    return _json(
        {
            "conversation_id": record.id,
            "platform": record.meta.platform,
            "status": record.status,
            "score": record.score,
            "level": record.level,
            "turns": [
                {
                    "event_id": turn.stored.event.event_id,
                    "type": turn.stored.event.type.value,
                    "role": turn.stored.event.role.value if turn.stored.event.role else None,
                    "text": turn.stored.event.text,
                    "timestamp": _iso(turn.stored.event.timestamp),
                    "score": turn.stored.score,
                    "level": turn.stored.level,
                    "decision": turn.decision,
                    "markers": [
                        {"signal": m.signal, "points": m.points, "text": m.text}
                        for m in turn.markers
                    ],
                }
                for turn in turns
            ],
            "escalations": [
                {
                    "escalation_id": escalation.id,
                    "status": escalation.status.value,
                    "level": escalation.level,
                    "team": escalation.team,
                    "opened_at": _iso(escalation.opened_at),
                    "history": [
                        {
                            "at": _iso(step.at),
                            "kind": step.kind,
                            "actor": step.actor_name or step.actor_id,
                            "surface": step.surface,
                            "from": step.from_status,
                            "to": step.to_status,
                        }
                        for step in steps
                    ],
                }
                for escalation, steps in found["history"]
            ],
        }
    )


# --- rules ------------------------------------------------------------------------------------


def _rules_facts(service: Service) -> dict[str, Any]:
    store = service.rules
    rejection = store.last_rejection
    return {
        "path": str(store.path),
        "loaded_at": _iso(store.loaded_at),
        "rules": store.current().model_dump(mode="json"),
        "last_rejection": None
        if rejection is None
        else {"at": _iso(rejection.at), "problems": list(rejection.problems)},
    }


def _try(service: Service, pasted: str) -> tuple[list[model.ExplainedTurn], str]:
    """Run a pasted generic-format conversation through the rules in force (raises ValueError)."""
    try:
        raw = json.loads(pasted)
    except json.JSONDecodeError as error:
        raise ValueError(f"not valid JSON: {error.msg} (line {error.lineno})") from None
    try:
        batch = parse_generic_object(raw)
    except BadPayload as error:
        raise ValueError(str(error)) from None
    result = run_conversation(batch, service.rules.current())
    return model.explain(batch, result), model.describe(result)


async def rules_page(request: web.Request, session: DashboardSession | None) -> web.StreamResponse:
    """GET /rules, and POST /rules/try with a pasted conversation."""
    assert session is not None
    service = request.app[SERVICE_KEY]
    pasted, explained, summary, error = "", None, None, None
    if request.method == "POST":
        pasted = str((await request.post()).get("conversation", ""))
        try:
            explained, summary = _try(service, pasted)
        except ValueError as problem:
            error = str(problem)
    facts = _rules_facts(service)
    rejection = service.rules.last_rejection
    text = pages.rules_page(
        rules_yaml=yaml.safe_dump(facts["rules"], sort_keys=False, allow_unicode=True),
        path=facts["path"],
        loaded_at=service.rules.loaded_at,
        rejection=None if rejection is None else (rejection.at, rejection.problems),
        csrf=session.csrf,
        pasted=pasted,
        explained=explained,
        summary=summary,
        error=error,
    )
    return _html(text, 400 if error else 200)


async def rules_api(request: web.Request, session: DashboardSession | None) -> web.StreamResponse:
    """GET /api/v1/rules."""
    return _json(_rules_facts(request.app[SERVICE_KEY]))


async def rules_try_api(
    request: web.Request, session: DashboardSession | None
) -> web.StreamResponse:
    """POST /api/v1/rules/try: the explanation for a generic-format conversation."""
    try:
        explained, summary = _try(request.app[SERVICE_KEY], await request.text())
    except ValueError as problem:
        return _json({"error": str(problem)}, 400)
    return _json({"summary": summary, "turns": [turn.to_json() for turn in explained]})


# --- actions ----------------------------------------------------------------------------------


async def escalation_action(
    request: web.Request, session: DashboardSession | None
) -> web.StreamResponse:
    """POST /escalations/{id}/{claim|release|resolve} from the queue or conversation page."""
    service = request.app[SERVICE_KEY]
    form = await request.post()
    back = _local_path(str(form.get("next", "")) or None, "/queue")
    try:
        escalation_id = int(request.match_info["escalation_id"])
    except ValueError:
        raise web.HTTPNotFound() from None
    verb = request.match_info["verb"]
    if verb == "claim":
        result = await service.handoff.claim(escalation_id, ADMIN)
    elif verb == "release":
        result = await service.handoff.release(escalation_id, ADMIN)
    elif verb == "resolve":
        note = str(form.get("note", "")) or None
        result = await service.handoff.resolve(escalation_id, ADMIN, "resolved", note)
    else:
        raise web.HTTPNotFound()
    notice = f"#{escalation_id}: {result.message}"
    separator = "&" if "?" in back else "?"
    raise web.HTTPSeeOther(f"{back}{separator}notice={quote(notice)}")
