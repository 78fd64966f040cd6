"""Transcripts hold customer data: nothing of the dashboard opens without the admin token."""

from __future__ import annotations

from tests.dashboard.conftest import TOKEN, Dashboard, DashboardFactory, csrf_of

PAGES = ("/", "/queue", "/conversations/c-1", "/rules")
API = ("/api/v1/overview", "/api/v1/queue", "/api/v1/conversations/c-1", "/api/v1/rules")


async def test_pages_send_strangers_to_the_login_and_the_api_answers_401(
    sqlite_dashboard: Dashboard,
) -> None:
    client = sqlite_dashboard.client
    for path in PAGES:
        response = await client.get(path, allow_redirects=False)
        assert response.status == 303, path
        assert response.headers["Location"].startswith("/login?next=")
    for path in API:
        response = await client.get(path)
        assert response.status == 401, path
        assert "error" in await response.json()
    forged = await client.get("/api/v1/queue", headers={"Authorization": "Bearer guess"})
    assert forged.status == 401


async def test_the_admin_logs_in_and_lands_where_they_were_going(
    sqlite_dashboard: Dashboard,
) -> None:
    response = await sqlite_dashboard.login(next_path="/conversations/c-1")
    assert response.status == 303
    assert response.headers["Location"] == "/conversations/c-1"
    page = await sqlite_dashboard.client.get("/conversations/c-1")
    assert page.status == 200
    assert "where is my refund" in await page.text()
    assert page.headers["Cache-Control"] == "no-store"


async def test_the_login_never_redirects_off_the_site(sqlite_dashboard: Dashboard) -> None:
    response = await sqlite_dashboard.login(next_path="//evil.example/")
    assert response.headers["Location"] == "/"


async def test_a_wrong_password_is_refused_and_repeated_failures_are_throttled(
    sqlite_dashboard: Dashboard,
) -> None:
    for _ in range(5):
        refused = await sqlite_dashboard.login(password="letmein")
        assert refused.status == 401
        assert "That token is not right." in await refused.text()
    throttled = await sqlite_dashboard.login()  # even the right token waits now
    assert throttled.status == 429
    assert int(throttled.headers["Retry-After"]) == 300
    assert (await sqlite_dashboard.client.get("/api/v1/queue")).status == 401

    sqlite_dashboard.clock.advance(minutes=5)
    assert (await sqlite_dashboard.login()).status == 303


async def test_the_session_expires_after_eight_hours(sqlite_dashboard: Dashboard) -> None:
    await sqlite_dashboard.login()
    sqlite_dashboard.clock.advance(hours=7, minutes=59)
    assert (await sqlite_dashboard.client.get("/api/v1/queue")).status == 200
    sqlite_dashboard.clock.advance(minutes=1)
    assert (await sqlite_dashboard.client.get("/api/v1/queue")).status == 401


async def test_the_session_lifetime_is_configurable(
    make_sqlite_dashboard: DashboardFactory,
) -> None:
    async for dashboard in make_sqlite_dashboard(ESCALATIONS_SESSION_HOURS="1"):
        response = await dashboard.login()
        assert "Max-Age=3600" in response.headers["Set-Cookie"]
        dashboard.clock.advance(hours=1)
        assert (await dashboard.client.get("/api/v1/queue")).status == 401


async def test_the_session_cookie_is_httponly_strict_and_secure_behind_https(
    make_sqlite_dashboard: DashboardFactory,
) -> None:
    async for dashboard in make_sqlite_dashboard(public_url="https://escalations.example.com"):
        form = await dashboard.client.get("/login")
        assert "Secure" in form.headers["Set-Cookie"]
        csrf = csrf_of(await form.text())
        # The client, on plain http, would not send back a Secure cookie: send it by hand.
        response = await dashboard.client.post(
            "/login",
            data={"csrf": csrf, "password": TOKEN},
            headers={"Cookie": f"escalations_login_csrf={csrf}"},
            allow_redirects=False,
        )
        cookie = response.headers["Set-Cookie"]
        assert "escalations_session=" in cookie
        assert "HttpOnly" in cookie
        assert "SameSite=Strict" in cookie
        assert "Secure" in cookie


async def test_forms_without_the_session_csrf_token_are_refused(
    sqlite_dashboard: Dashboard,
) -> None:
    await sqlite_dashboard.login()
    client = sqlite_dashboard.client
    claim = f"/escalations/{sqlite_dashboard.escalation_ids['c-4']}/claim"
    forged = await client.post(claim, data={"csrf": "guess"}, allow_redirects=False)
    assert forged.status == 403
    missing = await client.post("/rules/try", data={"conversation": "{}"})
    assert missing.status == 403
    login_without_token = await client.post(
        "/login", data={"password": TOKEN}, allow_redirects=False
    )
    assert login_without_token.status == 403

    queue = await client.get("/queue")
    claimed = await client.post(
        claim, data={"csrf": csrf_of(await queue.text()), "next": "/queue"}, allow_redirects=False
    )
    assert claimed.status == 303
    assert claimed.headers["Location"].startswith("/queue?notice=")


async def test_logging_out_ends_the_session(sqlite_dashboard: Dashboard) -> None:
    await sqlite_dashboard.login()
    page = await sqlite_dashboard.client.get("/rules")
    out = await sqlite_dashboard.client.post(
        "/logout", data={"csrf": csrf_of(await page.text())}, allow_redirects=False
    )
    assert out.status == 303
    assert (await sqlite_dashboard.client.get("/api/v1/rules")).status == 401


async def test_without_an_admin_token_the_dashboard_says_which_variable_to_set(
    make_sqlite_dashboard: DashboardFactory,
) -> None:
    async for dashboard in make_sqlite_dashboard(token=None):
        page = await dashboard.client.get("/")
        assert page.status == 503
        assert "ESCALATIONS_DASHBOARD_TOKEN" in await page.text()
        login = await dashboard.client.get("/login")
        assert login.status == 503
        api = await dashboard.client.get("/api/v1/overview", headers={"Authorization": "Bearer "})
        assert api.status == 503
        assert "ESCALATIONS_DASHBOARD_TOKEN" in (await api.json())["error"]


async def test_sessions_signed_with_the_shared_secret_survive_a_restart(
    make_sqlite_dashboard: DashboardFactory,
) -> None:
    cookie = ""
    async for first in make_sqlite_dashboard(ESCALATIONS_SESSION_SECRET="shared"):
        await first.login()
        [morsel] = [m for m in first.client.session.cookie_jar if m.key == "escalations_session"]
        cookie = morsel.value
    # The same database, seeded once: a second process with the same secret.
    async for second in make_sqlite_dashboard(ESCALATIONS_SESSION_SECRET="shared", seeded=False):
        answer = await second.client.get(
            "/api/v1/queue", headers={"Cookie": f"escalations_session={cookie}"}
        )
        assert answer.status == 200
        tampered = cookie[:-1] + ("0" if cookie[-1] != "0" else "1")
        refused = await second.client.get(
            "/api/v1/queue", headers={"Cookie": f"escalations_session={tampered}"}
        )
        assert refused.status == 401
