"""Editing rules.yaml under a running service: file watch, SIGHUP and the admin endpoint."""

from __future__ import annotations

import asyncio
import re
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.reliability.harness import (
    ADMIN_TOKEN,
    REPO,
    WAIT_LIMIT_SECONDS,
    ServiceProcess,
    angry_events,
    post_body,
    service_environ,
    signed_headers,
)

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGHUP"), reason="SIGHUP is POSIX only")

GOOD = (REPO / "rules.yaml").read_text()
# The same file with the signals that catch an angry, stuck customer turned off.
QUIET = re.sub(
    r"(\n  (sentiment|human_request|fallbacks|repetition|frustration):\n(    #[^\n]*\n)*"
    r"    enabled:) true",
    r"\1 false",
    GOOD,
)
BROKEN = GOOD.replace("  sentiment:\n", "  sentimnet:\n", 1)
AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@pytest.fixture
async def service(tmp_path: Path) -> AsyncIterator[tuple[ServiceProcess, Path]]:
    rules = tmp_path / "rules.yaml"
    rules.write_text(GOOD)
    process = ServiceProcess(
        service_environ(
            database_url=f"sqlite:///{tmp_path / 'escalations.db'}",
            data_dir=tmp_path / "data",
            rules_path=rules,
        ),
        tmp_path / "service.log",
    )
    await process.start()
    yield process, rules
    process.stop()


async def escalates(http: aiohttp.ClientSession, base_url: str, cid: str) -> bool:
    body = post_body(cid, angry_events())
    async with http.post(
        f"{base_url}/webhooks/generic", data=body, headers=signed_headers(body)
    ) as response:
        assert response.status == 200
        answer = await response.json()
    return bool(answer["escalations_opened"])


async def reloads(http: aiohttp.ClientSession, base_url: str) -> list[dict[str, Any]]:
    async with http.get(f"{base_url}/admin/rules/reloads", headers=AUTH) as response:
        assert response.status == 200
        answer = await response.json()
    records: list[dict[str, Any]] = answer["reloads"]
    return records


async def wait_for_reload(
    http: aiohttp.ClientSession, base_url: str, trigger: str, seen: int
) -> dict[str, Any]:
    """The newest reload record with this trigger, once more than `seen` reloads happened."""
    deadline = time.monotonic() + WAIT_LIMIT_SECONDS
    while True:
        records = await reloads(http, base_url)
        if len(records) > seen and any(r["trigger"] == trigger for r in records[: -seen or None]):
            return next(r for r in records if r["trigger"] == trigger)
        assert time.monotonic() < deadline, records
        await asyncio.sleep(0.2)  # the watcher runs in another process: poll, bounded


async def test_rules_edited_on_disk_take_effect_without_a_restart_and_a_broken_file_is_refused(
    service: tuple[ServiceProcess, Path],
) -> None:
    process, rules = service
    base = process.base_url
    async with aiohttp.ClientSession() as http:
        assert await escalates(http, base, "c-1")
        start = await reloads(http, base)
        assert [r["trigger"] for r in start] == ["start"]

        # 1. Edited on disk: picked up by the file watcher.
        rules.write_text(QUIET)
        record = await wait_for_reload(http, base, "file changed", seen=1)
        assert record["loaded"] is True
        assert not await escalates(http, base, "c-2")

        # 2. A broken file and SIGHUP: refused with file, line and key; the quiet rules stay.
        seen = len(await reloads(http, base))
        rules.write_text(BROKEN)
        process.send(signal.SIGHUP)
        record = await wait_for_reload(http, base, "SIGHUP", seen=seen)
        assert record["loaded"] is False
        assert any(
            f"{rules}:" in problem and "sentimnet" in problem for problem in record["problems"]
        ), record
        assert not await escalates(http, base, "c-3")
        assert "sentimnet" in process.log()  # the errors are logged, too

        # 3. The admin endpoint: refused without the token, reloads with it.
        rules.write_text(GOOD)
        async with http.post(f"{base}/admin/rules/reload") as response:
            assert response.status == 401
        async with http.post(f"{base}/admin/rules/reload", headers=AUTH) as response:
            assert response.status == 200
            assert (await response.json())["loaded"] is True
        assert await escalates(http, base, "c-4")

        rules.write_text(BROKEN)
        async with http.post(f"{base}/admin/rules/reload", headers=AUTH) as response:
            assert response.status == 422
            answer = await response.json()
        assert answer["loaded"] is False
        assert any("sentimnet" in problem for problem in answer["problems"])
        assert await escalates(http, base, "c-5")  # the last good rules are still in force

        # Every attempt is on record, newest first.
        triggers = [r["trigger"] for r in await reloads(http, base)]
        assert triggers[0] == "admin"
        assert triggers[-1] == "start"
        assert {"file changed", "SIGHUP", "admin"} <= set(triggers)
