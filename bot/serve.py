"""Running the service in the foreground, optionally with the built-in demo source."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gc
import logging
import secrets
import signal
from typing import Any

from aiohttp import web

from bot.app import build_service, create_app
from bot.config import Settings
from bot.demo import feed_demo

log = logging.getLogger(__name__)


def serve(settings: Settings, *, demo: bool = False, **overrides: Any) -> int:
    """Run until interrupted; return the exit code."""
    settings = dataclasses.replace(settings, **overrides)
    if demo and not settings.environ.get("ESCALATIONS_WEBHOOK_SECRET"):
        # The demo signs its own posts; a fresh secret per run keeps the endpoint closed to others.
        environ = dict(settings.environ)
        environ["ESCALATIONS_WEBHOOK_SECRET"] = secrets.token_hex(16)
        settings = dataclasses.replace(settings, environ=environ)
    if demo and not settings.dashboard_token:
        # Logs never carry secrets: the demo's dashboard password goes to a private file.
        token = secrets.token_urlsafe(12)
        settings = dataclasses.replace(settings, dashboard_token=token)
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        password_file = settings.data_dir / "dashboard-password"
        password_file.touch(mode=0o600, exist_ok=True)
        password_file.write_text(token + "\n", encoding="utf-8")
        log.info("demo dashboard: %s/ — the password is in %s", settings.base_url, password_file)
    return asyncio.run(_serve(settings, demo))


# Container allocations between two collections of the youngest generation (CPython's default
# is 700). A collection walks every young object still alive: under load, those of the posts in
# flight. Most of what a post builds is freed by reference counting before the next collection
# at this threshold, so it is never walked at all; only reference cycles wait longer.
YOUNG_COLLECTION_THRESHOLD = 20_000


def _settle_heap() -> None:
    """Keep the garbage collector off what startup built, and seldom on what requests build.

    Modules, the rules, SQLAlchemy's and the chat SDKs' objects live as long as the process;
    without this every full collection walks them all again (hundreds of thousands of objects):
    a pause of tens of milliseconds, every few thousand requests, that was most of the webhook
    p99. Frozen, they are never scanned. What requests build is collected as before, with the
    youngest generation's threshold raised (`YOUNG_COLLECTION_THRESHOLD`).
    """
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_COLLECTION_THRESHOLD, older, oldest)


async def _serve(settings: Settings, demo: bool) -> int:
    service = build_service(settings)
    app = create_app(service)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, settings.host, settings.port)
    await site.start()
    _settle_heap()
    log.info(
        "Escalation Tracker listening on %s (database: %s)",
        settings.base_url,
        service.database.dialect,
    )
    log.info("rules: %s", settings.rules_path)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    feeder: asyncio.Task[None] | None = None
    if demo:
        secret = settings.environ["ESCALATIONS_WEBHOOK_SECRET"]
        feeder = asyncio.create_task(feed_demo(settings.base_url, secret))
    try:
        await stop.wait()
    finally:
        if feeder is not None:
            feeder.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await feeder
        await runner.cleanup()
    return 0
