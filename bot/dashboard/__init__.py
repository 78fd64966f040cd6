"""The operations dashboard: overview, queue, transcripts and rules, behind an admin login."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from aiohttp import web

from bot.app import Service
from bot.dashboard import views
from bot.dashboard.auth import DashboardAuth
from bot.pipeline import utc_now

STATIC = Path(__file__).parent / "static"


def dashboard_routes() -> list[web.AbstractRouteDef]:
    """Every dashboard route; each one checks the login itself (see `views.guard`)."""
    return [
        web.get("/login", views.login_form),
        web.post("/login", views.login),
        web.post("/logout", views.page(views.logout)),
        web.get("/", views.page(views.overview_page)),
        web.get("/queue", views.page(views.queue_page)),
        web.get("/conversations/{conversation_id}", views.page(views.conversation_page)),
        web.get("/rules", views.page(views.rules_page)),
        web.post("/rules/try", views.page(views.rules_page)),
        web.post("/escalations/{escalation_id}/{verb}", views.page(views.escalation_action)),
        web.get("/api/v1/overview", views.api(views.overview_api)),
        web.get("/api/v1/queue", views.api(views.queue_api)),
        web.get("/api/v1/conversations/{conversation_id}", views.api(views.conversation_api)),
        web.get("/api/v1/rules", views.api(views.rules_api)),
        web.post("/api/v1/rules/try", views.api(views.rules_try_api)),
        # Stylesheet and script only: no customer data, and the login page needs them.
        web.static("/dashboard/static", STATIC),
    ]


def install_dashboard(
    app: web.Application, service: Service, *, clock: Callable[[], datetime] = utc_now
) -> DashboardAuth:
    """Add the dashboard to the app (before it starts); returns its access policy."""
    settings = service.settings
    auth = DashboardAuth.from_env(
        settings.environ, settings.dashboard_token, settings.base_url, clock
    )
    app[views.AUTH_KEY] = auth
    app.add_routes(dashboard_routes())
    return auth
