"""Secrets and access: nobody without the secret gets in, and no secret or personal data leaks."""

from __future__ import annotations

import ast
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from bot.app import Service, build_service, create_app
from bot.config import Settings
from connectors.registry import CONNECTORS
from storage.db import Database
from tests.bot.conftest import Clock
from tests.reliability.harness import (
    ADMIN_TOKEN,
    REPO,
    SLACK_SIGNING_SECRET,
    SLACK_TOKEN,
    T0,
    WEBHOOK_SECRET,
    ChatPlatform,
    angry_events,
    post_body,
    signed_headers,
)

TEAMS_PASSWORD = "teams-app-password-value"
CONNECTOR_SECRETS = {c.secret_env: f"secret-of-{c.name}" for c in CONNECTORS.values()}
SECRETS = [
    WEBHOOK_SECRET,
    SLACK_TOKEN,
    SLACK_SIGNING_SECRET,
    ADMIN_TOKEN,
    TEAMS_PASSWORD,
    *CONNECTOR_SECRETS.values(),
]
EMAIL = "ana.lopez@example.com"
CARD_NUMBER = "4111 1111 1111 1111"
PHONE = "+34 612 345 678"


@dataclass
class Secure:
    service: Service
    client: TestClient[Any, Any]
    slack: ChatPlatform


@pytest.fixture
async def secure(database: Database, tmp_path: Path) -> AsyncIterator[Secure]:
    slack = ChatPlatform()
    await slack.start()
    environ = {
        **CONNECTOR_SECRETS,
        "ESCALATIONS_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "ESCALATIONS_DASHBOARD_TOKEN": ADMIN_TOKEN,
        "SLACK_BOT_TOKEN": SLACK_TOKEN,
        "SLACK_SIGNING_SECRET": SLACK_SIGNING_SECRET,
        "SLACK_API_URL": slack.api_url,
        "MICROSOFT_APP_ID": "00000000-0000-0000-0000-000000000001",
        "MICROSOFT_APP_PASSWORD": TEAMS_PASSWORD,
    }
    settings = Settings(
        rules_path=REPO / "rules.yaml",
        data_dir=tmp_path / "data",
        public_url="https://escalations.example.com",
        dashboard_token=ADMIN_TOKEN,
        environ=environ,
    )
    service = build_service(settings, clock=Clock(T0 + timedelta(minutes=1)), database=database)
    app = create_app(service, watch_rules_every=None, run_delivery=False)
    async with TestClient(TestServer(app)) as client:
        yield Secure(service, client, slack)
    await slack.close()


@pytest.mark.parametrize("name", sorted(CONNECTORS))
async def test_every_webhook_refuses_a_post_without_its_credentials(
    secure: Secure, name: str
) -> None:
    response = await secure.client.post(
        f"/webhooks/{name}",
        data=b'{"conversation_id": "c-x"}',
        headers={"Content-Type": "application/json"},
    )
    assert response.status == 401, await response.text()
    assert (await response.json())["error"]


async def test_slack_and_teams_requests_must_be_signed(secure: Secure) -> None:
    slack = await secure.client.post("/slack/events", data=b"payload=%7B%7D")
    assert slack.status == 401
    teams = await secure.client.post("/api/messages", json={"type": "message", "text": "hi"})
    assert teams.status == 401


async def test_the_dashboard_and_admin_api_need_authentication(secure: Secure) -> None:
    page = await secure.client.get("/", allow_redirects=False)
    assert page.status in (302, 303, 401)
    api = await secure.client.get("/api/v1/overview")
    assert api.status == 401
    wrong = await secure.client.post(
        "/admin/rules/reload", headers={"Authorization": "Bearer guess"}
    )
    assert wrong.status == 401


def test_every_connector_compares_secrets_in_constant_time() -> None:
    """No `==` or `!=` between values named like a secret, signature, digest or token."""
    suspicious = ("secret", "signature", "digest", "token", "expected", "password")
    offenders: list[str] = []
    for path in sorted((REPO / "connectors").glob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if not isinstance(node, ast.Compare):
                continue
            if not any(isinstance(op, ast.Eq | ast.NotEq) for op in node.ops):
                continue
            if any(isinstance(side, ast.Constant) for side in [node.left, *node.comparators]):
                continue  # against a literal (an algorithm name, a scheme): not a secret
            names = {
                sub.id.lower() if isinstance(sub, ast.Name) else sub.attr.lower()
                for operand in [node.left, *node.comparators]
                for sub in ast.walk(operand)
                if isinstance(sub, ast.Name | ast.Attribute)
            }
            if any(word in name for name in names for word in suspicious):
                offenders.append(f"{path.name}:{node.lineno}: {ast.unparse(node)}")
    assert offenders == []


async def test_no_secret_is_logged_and_personal_data_stays_out_of_cards_and_info_logs(
    secure: Secure, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    events = angry_events()
    events[0]["text"] = f"refund please, I am {EMAIL}, card {CARD_NUMBER}, call {PHONE}"
    events[2]["text"] = f"my card is {CARD_NUMBER} and my mail {EMAIL}"
    body = post_body("c-pii", events)
    response = await secure.client.post(
        "/webhooks/generic", data=body, headers=signed_headers(body)
    )
    assert response.status == 200
    # Forged and unauthorised attempts log their refusal, never the secret they should carry.
    await secure.client.post("/webhooks/generic", data=body, headers=signed_headers(body, "x"))
    await secure.client.post("/admin/rules/reload", headers={"Authorization": "Bearer nope"})
    for _ in range(3):
        await secure.service.delivery.run_once()
    cards = secure.slack.card_texts()
    assert len(cards) == 1

    logged = "\n".join(
        f"{record.getMessage()} {record.args!r} {record.exc_text or ''}"
        for record in caplog.records
    )
    assert [secret for secret in SECRETS if secret in logged] == []
    info = "\n".join(
        record.getMessage() for record in caplog.records if record.levelno >= logging.INFO
    )
    sent_to_slack = "\n".join(secure.slack.texts())
    assert "Last messages" in sent_to_slack  # the card quotes the customer, redacted
    for personal in (EMAIL, CARD_NUMBER, PHONE, "4111111111111111"):
        assert personal not in info
        assert personal not in sent_to_slack
