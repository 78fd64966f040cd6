"""An admin in headless Chromium: logs in, reads the overview, opens a transcript, tries rules."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, ConsoleMessage, Page, async_playwright, expect

from tests.dashboard.conftest import ARTIFACTS, TOKEN, Dashboard

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed"),
]


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        yield launched
        await launched.close()


class Visit:
    """One browser tab on the dashboard that records console errors."""

    def __init__(self, page: Page, base: str) -> None:
        self.page = page
        self.base = base
        self.errors: list[str] = []
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.errors.append(str(error)))

    def _console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.errors.append(message.text)

    async def open(self, path: str) -> None:
        await self.page.goto(self.base + path)

    async def log_in(self, password: str = TOKEN) -> None:
        await self.page.get_by_label("Admin token").fill(password)
        await self.page.get_by_role("button", name="Log in").click()

    async def screenshot(self, name: str) -> None:
        """Save the page as test-artifacts/dashboard/<name>.png and check it rendered."""
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{name}.png"
        await self.page.screenshot(path=str(path), full_page=True)
        assert path.stat().st_size > 5_000, f"{path.name} looks empty"
        assert self.errors == [], self.errors


@pytest.fixture
async def visit(browser: Browser, sqlite_dashboard: Dashboard) -> AsyncIterator[Visit]:
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    yield Visit(await context.new_page(), str(sqlite_dashboard.client.make_url("")).rstrip("/"))
    await context.close()


async def test_the_admin_logs_in_and_sees_the_seeded_figures(visit: Visit) -> None:
    await visit.open("/")
    await expect(visit.page).to_have_url(visit.base + "/login?next=/")
    await visit.screenshot("login")
    await visit.log_in()

    page = visit.page
    await expect(page.get_by_role("heading", name="Overview")).to_be_visible()
    await expect(page.get_by_test_id("escalations")).to_have_text("3")
    await expect(page.get_by_test_id("handoff-rate")).to_have_text("75.0%")
    await expect(page.get_by_test_id("claim-median")).to_have_text("2m 00s")
    await expect(page.get_by_test_id("resolution-median")).to_have_text("10m 00s")
    await expect(page.get_by_test_id("open-now")).to_have_text("2")
    await expect(page.get_by_test_id("unclaimed-now")).to_have_text("1")
    await expect(page.locator("rect.heat[data-count='2']")).to_have_count(1)
    await expect(page.locator("table.queue tbody tr")).to_have_count(2)
    await visit.screenshot("overview")

    await page.emulate_media(color_scheme="dark")
    await visit.screenshot("overview-dark")


async def test_a_wrong_password_is_rejected(visit: Visit) -> None:
    await visit.open("/login")
    await visit.log_in("not the token")
    await expect(visit.page.get_by_role("alert")).to_have_text("That token is not right.")
    await expect(visit.page.get_by_role("heading", name="Log in")).to_be_visible()
    # The refusal is a 401 answer, which Chromium reports on the console; that one is expected.
    visit.errors = [e for e in visit.errors if "401" not in e]
    await visit.screenshot("login-refused")


async def test_the_transcript_shows_warnings_at_the_turns_where_signals_fired(
    visit: Visit,
) -> None:
    await visit.open("/conversations/c-1")
    await visit.log_in()
    page = visit.page
    await expect(page.get_by_role("heading", name="Conversation c-1")).to_be_visible()

    await expect(page.locator("li.turn")).to_have_count(5)
    for event_id, signal in (
        ("m2", "unresolved"),
        ("m2", "fallbacks"),
        ("m3", "repetition"),
        ("m4", "fallbacks"),
        ("m4", "unresolved"),
        ("m5", "human_request"),
        ("m5", "frustration"),
    ):
        marker = page.locator(f"[data-event-id='{event_id}'] .marker[data-signal='{signal}']")
        await expect(marker).to_be_visible()
    await expect(page.locator("[data-event-id='m4'] [data-decision='open']")).to_have_text(
        "Escalated: a card was posted for a human"
    )
    await expect(page.locator("[data-event-id='m5'] [data-decision='upgrade']")).to_have_text(
        "Escalation upgraded to a higher level"
    )
    await expect(page.locator("[data-event-id='m1'] .marker")).to_have_count(0)
    await expect(page.locator("svg circle.dot")).to_have_count(5)
    await expect(page.locator("tr[data-kind]")).to_have_count(
        4
    )  # opened, upgraded, claimed, resolved
    await visit.screenshot("conversation")


async def test_the_admin_claims_from_the_queue(visit: Visit, sqlite_dashboard: Dashboard) -> None:
    await visit.open("/queue")
    await visit.log_in()
    page = visit.page
    waiting = page.locator(f"tr[data-escalation='{sqlite_dashboard.escalation_ids['c-4']}']")
    await expect(waiting.get_by_test_id("age")).to_have_text("7m 00s")
    await waiting.get_by_role("button", name="Claim").click()
    await expect(page.get_by_role("status")).to_contain_text("You have it")
    await expect(waiting).to_contain_text("dashboard admin")
    await visit.screenshot("queue")


async def test_try_it_explains_a_pasted_conversation(visit: Visit) -> None:
    await visit.open("/rules")
    await visit.log_in()
    page = visit.page
    await expect(page.get_by_test_id("no-rejection")).to_be_visible()
    await page.get_by_label("Conversation JSON").fill(
        '{"conversation_id": "pasted", "events": ['
        '{"id": "p1", "type": "message", "role": "customer", "text": "hi",'
        ' "timestamp": "2026-11-24T10:00:00Z"},'
        '{"id": "p2", "type": "message", "role": "customer",'
        ' "text": "this is useless, let me talk to a human agent",'
        ' "timestamp": "2026-11-24T10:00:05Z"}]}'
    )
    await page.get_by_role("button", name="Run").click()
    await expect(page.get_by_test_id("try-summary")).to_contain_text(
        "pasted: ESCALATED at event p2 -> level urgent"
    )
    await visit.screenshot("rules")
