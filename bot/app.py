"""The running service: one aiohttp application wiring webhooks, chat surfaces and workers."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from bot.admin import admin_routes
from bot.config import Settings
from bot.console import ConsoleNotifier
from bot.conversation_status import status_routes
from bot.delivery import DeliveryPolicy, DeliveryWorker
from bot.digest import (
    ConsoleDigestPublisher,
    DigestDelivery,
    DigestPublisher,
    SlackDigestPublisher,
)
from bot.handback import PlatformCalls
from bot.metrics import Metrics
from bot.notifier import Notifier
from bot.pipeline import Clock, Ingestor, IngestPipeline, IngestResult, utc_now
from bot.ratelimit import webhook_rate_limit
from bot.retention import RetentionJob, retention_days
from bot.rules_store import RulesStore
from bot.scheduler import JobScheduler, Leadership, service_jobs
from bot.service import HandoffService
from connectors.base import BaseConnector, Connector, ConnectorError, InboundRequest
from connectors.outbound import clients_from_env
from connectors.registry import CONNECTORS, get_connector
from storage import outbox, teams_channels
from storage.db import Database

log = logging.getLogger(__name__)

SERVICE_KEY: web.AppKey[Service] = web.AppKey("service")


@dataclass
class Service:
    """Everything one process runs, built from settings; the aiohttp app holds one."""

    settings: Settings
    database: Database
    rules: RulesStore
    metrics: Metrics
    pipeline: IngestPipeline
    delivery: DeliveryWorker
    handoff: HandoffService
    notifiers: dict[str, Notifier]
    routes: list[web.RouteDef] = field(default_factory=list)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    # Coroutines run once when the app starts (e.g. logging the Teams channels known).
    startup: list[Callable[[], Awaitable[object]]] = field(default_factory=list)
    surfaces: frozenset[str] = frozenset()
    clock: Clock = utc_now
    scheduler: JobScheduler | None = None
    digest_publishers: dict[str, DigestPublisher] = field(default_factory=dict)


def build_service(
    settings: Settings,
    *,
    clock: Clock = utc_now,
    extra_notifiers: dict[str, Notifier] | None = None,
    delivery_policy: DeliveryPolicy | None = None,
    database: Database | None = None,
) -> Service:
    """Connect to the database, load the rules and configure every surface from settings."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    metrics = Metrics()
    if database is None:
        database = Database(settings.resolved_database_url)
    database.migrate()
    rules = RulesStore(settings.rules_path, metrics, clock)

    notifiers: dict[str, Notifier] = {"console": ConsoleNotifier()}
    notifiers.update(extra_notifiers or {})
    surfaces_box: dict[str, frozenset[str]] = {"value": frozenset()}

    def surfaces() -> frozenset[str]:
        return surfaces_box["value"]

    if delivery_policy is None:
        delivery_policy = DeliveryPolicy(lease_seconds=settings.delivery_lease_seconds)
    delivery = DeliveryWorker(
        database, notifiers, settings.base_url, clock=clock, policy=delivery_policy, metrics=metrics
    )
    # Pause / resume the bot on its own platform (clients configured from the environment).
    platform_calls = PlatformCalls(database, clients_from_env(settings.environ), surfaces, clock)
    delivery.platform_calls = platform_calls
    handoff = HandoffService(
        database,
        rules.current,
        surfaces,
        settings.base_url,
        clock,
        on_change=delivery.wake,
        platform_calls=platform_calls,
    )
    ingestor = Ingestor(rules.current, surfaces, clock)
    writers = settings.ingest_writers
    if writers is None:
        # Groups committed on the loop's own thread, on both databases (see IngestPipeline).
        writers = 0
    pipeline = IngestPipeline(database, ingestor, writers=writers, on_commit=delivery.wake)
    service = Service(
        settings=settings,
        database=database,
        rules=rules,
        metrics=metrics,
        pipeline=pipeline,
        delivery=delivery,
        handoff=handoff,
        notifiers=notifiers,
        clock=clock,
    )
    service.digest_publishers["console"] = ConsoleDigestPublisher()
    _add_chat_surfaces(service)
    service.routes.extend(status_routes(database, settings.environ))
    surfaces_box["value"] = frozenset(name for name in notifiers if name != "console")
    service.surfaces = surfaces_box["value"]
    delivery.digests = DigestDelivery(service.digest_publishers)
    service.scheduler = JobScheduler(
        service_jobs(
            database,
            rules.current,
            surfaces,
            settings.base_url,
            on_change=delivery.wake,
            platform_calls=platform_calls,
        ),
        Leadership(database),
        clock=clock,
    )

    def outbox_stat(pick: Callable[[outbox.OutboxStats], float]) -> Callable[[], float]:
        def read() -> float:
            with database.session() as session:
                return pick(outbox.stats(session=session, now=clock()))

        return read

    metrics.add_gauge(
        "escalations_outbox_depth", "Deliveries waiting.", outbox_stat(lambda s: s.depth)
    )
    metrics.add_gauge(
        "escalations_outbox_oldest_age_seconds",
        "Age of the oldest waiting delivery.",
        outbox_stat(lambda s: s.oldest_age_seconds or 0.0),
    )
    return service


def _add_chat_surfaces(service: Service) -> None:
    env = service.settings.environ
    from bot.slack.app import create_slack_app
    from bot.slack.settings import SlackSettings

    slack_settings = SlackSettings.from_env(env)
    if slack_settings is not None:  # from_env has said why Slack is off
        slack = create_slack_app(service.handoff, slack_settings)
        service.notifiers["slack"] = slack.notifier
        service.digest_publishers["slack"] = SlackDigestPublisher(slack.app.client)
        service.routes.extend(slack.routes())
        log.info("Slack is on (Web API at %s)", slack_settings.api_url)

    from bot.teams import TeamsDigestPublisher, TeamsSettings, create_teams_bot

    teams_settings = TeamsSettings.from_env(env)
    if teams_settings is None:
        log.warning("Teams is off: MICROSOFT_APP_ID is not set (nor local testing mode)")
    else:
        teams = create_teams_bot(
            service.handoff, teams_settings, StorageChannelDirectory(service.database)
        )
        service.notifiers["teams"] = teams.notifier
        service.digest_publishers["teams"] = TeamsDigestPublisher(teams.notifier)
        service.routes.extend(teams.routes())
        service.startup.append(teams.log_known_channels)
        log.info("Teams is on (POST /api/messages)")


class StorageChannelDirectory:
    """The Teams channels the bot was added to, kept in the database (shared by replicas)."""

    def __init__(self, database: Database) -> None:
        self._database = database

    async def save(self, channel_id: str, reference: dict[str, Any]) -> None:
        """Remember how to post to a channel."""

        def work() -> None:
            with self._database.session() as session:
                teams_channels.save_teams_channel(
                    session=session, channel_id=channel_id, reference=reference, now=utc_now()
                )

        await asyncio.to_thread(work)

    async def get(self, channel_id: str) -> dict[str, Any] | None:
        """How to post to a channel, or None when the bot was never added there."""
        return (await self.all()).get(channel_id)

    async def all(self) -> dict[str, dict[str, Any]]:
        """Every known channel."""

        def work() -> dict[str, dict[str, Any]]:
            with self._database.session() as session:
                return teams_channels.teams_channels(session=session)

        return await asyncio.to_thread(work)


async def _read_body(request: web.Request, limit: int) -> bytes | None:
    length = request.content_length
    if length is not None:
        # The HTTP parser delivers exactly Content-Length bytes: one read when that fits.
        return None if length > limit else await request.read()
    # Chunked: read(n) returns what has arrived so far; read to the end or just past the limit.
    body = bytearray()
    while len(body) <= limit:
        chunk = await request.content.read(limit + 1 - len(body))
        if not chunk:
            break
        body += chunk
    return None if len(body) > limit else bytes(body)


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


async def handle_webhook(request: web.Request) -> web.Response:
    """POST /webhooks/{name}: verify, parse, store durably, then answer."""
    service = request.app[SERVICE_KEY]
    name = request.match_info["name"]
    connector = get_connector(name)
    if connector is None:
        return _error(404, f"no connector named {name!r}; known: {', '.join(sorted(CONNECTORS))}")
    limit = service.settings.max_body_bytes
    body = await _read_body(request, limit)
    if body is None:
        service.metrics.webhooks_rejected.inc(name, "413")
        return _error(413, f"body larger than the limit of {limit} bytes")
    # The URL as the platform called it (Twilio signs it): the request line's own target, as
    # sent, after the scheme and host; yarl's parsed `request.url` costs three times as much.
    # A target in absolute form (`POST http://host/path`, as through a forward proxy) is the
    # whole URL already, which `request.url` reads.
    target = request.raw_path
    url = f"{request.scheme}://{request.host}{target}" if target[:1] == "/" else str(request.url)
    if service.settings.public_url:
        url = service.settings.public_url.rstrip("/") + request.path_qs
    inbound = InboundRequest(
        url=url,
        headers=request.headers,
        body=body,
        content_type=request.content_type,
        received_at=service.clock(),
    )
    secret = service.settings.environ.get(connector.secret_env) or None
    try:
        if secret is None:
            raise _unconfigured(connector.secret_env)
        connector.verify(inbound, secret)
        batches = connector.parse(inbound)
    except ConnectorError as error:
        service.metrics.webhooks_rejected.inc(name, str(error.status))
        return _error(error.status, str(error))
    result = await service.pipeline.submit(batches) if batches else None
    if result is not None:
        service.metrics.events_ingested.inc(name, by=result.events_stored)
        for level in result.opened_levels:
            service.metrics.escalations_opened.inc(level)
        service.metrics.events_duplicate.inc(by=result.duplicates)
    if _has_own_answer(connector):
        # The platform expects its own answer (Dialogflow, Lex): give it exactly that.
        content_type, payload = connector.respond(batches)
        return web.Response(body=payload, content_type=content_type.split(";")[0])
    if result is None:
        return web.json_response({"status": "ignored"})
    return web.Response(text=stored_answer(result), content_type="application/json")


def stored_answer(result: IngestResult) -> str:
    """The JSON answer to a stored post, written out: the text `json.dumps` gives of
    {"status": "stored", "events": ..., "stored": ..., "duplicates": ...,
    "escalations_opened": [...]}, without the encoder's Python layers (every post is answered)."""
    opened = ", ".join(map(str, result.opened))
    return (
        f'{{"status": "stored", "events": {result.events_received:d}, '
        f'"stored": {result.events_stored:d}, "duplicates": {result.duplicates:d}, '
        f'"escalations_opened": [{opened}]}}'
    )


def _has_own_answer(connector: Connector) -> bool:
    own = getattr(type(connector), "respond", None)
    return own is not None and own is not BaseConnector.respond


class _MissingSecret(ConnectorError):
    status = 401


def _unconfigured(env_name: str) -> ConnectorError:
    return _MissingSecret(f"this endpoint refuses posts until {env_name} is set on the service")


async def handle_healthz(request: web.Request) -> web.Response:
    """Liveness: the process answers."""
    return web.json_response({"status": "ok"})


async def handle_readyz(request: web.Request) -> web.Response:
    """Readiness: the database answers and the rules are loaded."""
    service = request.app[SERVICE_KEY]
    try:
        await asyncio.to_thread(_ping, service.database)
    except Exception as error:
        return web.json_response({"status": "unavailable", "database": str(error)}, status=503)
    return web.json_response(
        {"status": "ready", "rules_loaded_at": service.rules.loaded_at.isoformat()}
    )


def _ping(database: Database) -> None:
    with database.session() as session:
        outbox.stats(session=session, now=utc_now())


async def handle_metrics(request: web.Request) -> web.Response:
    """Prometheus text exposition."""
    service = request.app[SERVICE_KEY]
    text = await asyncio.to_thread(service.metrics.render)
    return web.Response(text=text, content_type="text/plain", charset="utf-8")


async def _watch_rules(service: Service, interval: float) -> None:
    while True:
        await asyncio.sleep(interval)
        try:
            service.rules.reload_if_changed()
        except Exception:
            log.exception("rules watcher failed")


def create_app(
    service: Service,
    *,
    watch_rules_every: float | None = 2.0,
    run_delivery: bool = True,
    run_scheduler: bool | None = None,
) -> web.Application:
    """The aiohttp application; workers start and stop with it.

    Tests pass `run_delivery=False` and drive `service.delivery.run_once()` and the scheduled
    jobs themselves; the scheduler runs when delivery does unless `run_scheduler` says otherwise.
    """
    if run_scheduler is None:
        run_scheduler = run_delivery
    # Webhook bodies are size-checked by the handler itself, which answers 413 with a message.
    app = web.Application(client_max_size=service.settings.max_body_bytes + 1024)
    limit = webhook_rate_limit(
        service.settings.environ,
        on_limited=lambda name: service.metrics.webhooks_rejected.inc(name, "429"),
    )
    if limit is not None:
        app.middlewares.append(limit)
    app[SERVICE_KEY] = service
    app.add_routes(
        [
            web.post("/webhooks/{name}", handle_webhook),
            web.get("/healthz", handle_healthz),
            web.get("/readyz", handle_readyz),
            web.get("/metrics", handle_metrics),
            *admin_routes(service.rules, service.settings.dashboard_token),
            *service.routes,
        ]
    )

    from bot.dashboard import install_dashboard  # the dashboard's views import Service

    install_dashboard(app, service, clock=service.clock)

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        for hook in service.startup:
            await hook()
        await service.pipeline.start()
        if run_scheduler and service.scheduler is not None:
            service.scheduler.start()
        if run_delivery:
            service.tasks.append(asyncio.create_task(service.delivery.run(), name="delivery"))
            retention = RetentionJob(service.database, retention_days(service.settings.environ))
            service.tasks.append(asyncio.create_task(retention.run(), name="retention"))
        if watch_rules_every:
            service.tasks.append(
                asyncio.create_task(_watch_rules(service, watch_rules_every), name="rules")
            )
        with contextlib.suppress(NotImplementedError, RuntimeError):
            asyncio.get_running_loop().add_signal_handler(
                signal.SIGHUP, service.rules.reload, "SIGHUP"
            )
        yield
        service.delivery.stop()
        if run_scheduler and service.scheduler is not None:
            await service.scheduler.shutdown()
        await service.pipeline.stop()
        for task in service.tasks:
            task.cancel()
        await asyncio.gather(*service.tasks, return_exceptions=True)
        service.tasks.clear()
        service.database.dispose()

    app.cleanup_ctx.append(lifecycle)
    return app
