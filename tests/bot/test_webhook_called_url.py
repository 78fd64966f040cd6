"""Without a public URL configured, a platform that signs the URL it calls (Twilio) is checked
against that URL exactly as it called it: scheme, host and port, path and query as sent, also
when the request line carries the whole URL (absolute form, as a forward proxy sends it)."""

from __future__ import annotations

import asyncio
import io
import json
from pathlib import Path
from urllib.parse import urlencode

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import func, select
from yarl import URL

from bot.app import build_service, create_app
from bot.config import Settings
from bot.console import ConsoleNotifier
from connectors.twilio import twilio_signature
from storage import tables
from storage.db import Database

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures" / "platforms"
AUTH_TOKEN = "twilio-auth-token"
# Percent-escapes as the platform sent them, and a second parameter: signed exactly so.
CALLED = "/webhooks/twilio?tag=caf%C3%A9%20bar&site=1"


def _form() -> list[tuple[str, str]]:
    sample = FIXTURES / "twilio_onMessageAdded_sms_customer.handwritten.json"
    params = json.loads(sample.read_text())
    return [(key, value) for key, value in params["params"]]


async def _post(
    database: Database, tmp_path: Path, signed_url: str, *, absolute_form: bool = False
) -> tuple[int, str, int]:
    env = {"ESCALATIONS_WEBHOOK_SECRET": "unused", "ESCALATIONS_TWILIO_SECRET": AUTH_TOKEN}
    settings = Settings(rules_path=REPO / "rules.yaml", data_dir=tmp_path / "data", environ=env)
    assert settings.public_url is None
    service = build_service(
        settings, database=database, extra_notifiers={"console": ConsoleNotifier(io.StringIO())}
    )
    app = create_app(service, watch_rules_every=None, run_delivery=False)
    async with TestClient(TestServer(app)) as client:
        form = _form()
        base = f"http://{client.host}:{client.port}"
        body = urlencode(form).encode()
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Twilio-Signature": twilio_signature(AUTH_TOKEN, signed_url.format(base=base), form),
        }
        if absolute_form:
            status, answer = await _post_absolute_form(client, base + CALLED, headers, body)
        else:
            response = await client.post(URL(CALLED, encoded=True), data=body, headers=headers)
            status, answer = response.status, await response.text()
    with database.session() as session:
        stored = session.execute(select(func.count()).select_from(tables.events)).scalar_one()
    return status, answer, stored


async def _post_absolute_form(
    client: TestClient[web.Request, web.Application],
    target: str,
    headers: dict[str, str],
    body: bytes,
) -> tuple[int, str]:
    """POST with the whole URL on the request line, over a plain socket (HTTP/1.1)."""
    reader, writer = await asyncio.open_connection(client.host, client.port)
    lines = [f"POST {target} HTTP/1.1", f"Host: {client.host}:{client.port}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    lines += [f"Content-Length: {len(body)}", "Connection: close"]
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
    await writer.drain()
    answer = (await reader.read()).decode()
    writer.close()
    await writer.wait_closed()
    head, _, text = answer.partition("\r\n\r\n")
    return int(head.split(" ", 2)[1]), text


async def test_a_signature_over_the_url_as_called_is_accepted(
    database: Database, tmp_path: Path
) -> None:
    status, answer, stored = await _post(database, tmp_path, "{base}" + CALLED)

    assert (status, json.loads(answer)["status"], stored) == (200, "stored", 1)


async def test_a_signature_over_another_query_or_host_is_refused_and_nothing_stored(
    database: Database, tmp_path: Path
) -> None:
    for other in (
        "{base}/webhooks/twilio",  # without the query
        "{base}/webhooks/twilio?tag=caf%C3%A9+bar&site=1",  # the query escaped otherwise
        "https://elsewhere.example.com" + CALLED,
    ):
        status, answer, stored = await _post(database, tmp_path, other)

        assert status == 401, other
        assert "signature does not match" in json.loads(answer)["error"]
        assert stored == 0


async def test_a_request_line_with_the_whole_url_is_checked_against_that_url(
    database: Database, tmp_path: Path
) -> None:
    status, answer, stored = await _post(database, tmp_path, "{base}" + CALLED, absolute_form=True)

    assert (status, json.loads(answer)["status"], stored) == (200, "stored", 1)
