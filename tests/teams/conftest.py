"""Fixtures for the Teams stories: the real bot on an aiohttp server and a fake Bot Connector."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from bot.teams import JsonFileChannelDirectory, TeamsSettings, create_teams_bot
from tests.teams.teams_fake_connector import FakeBotConnector
from tests.teams.teams_memory_handoff import MemoryHandoff
from tests.teams.teams_world import OPENED_AT, TeamsWorld


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[TeamsWorld]:
    """The real bot and adapter behind a real HTTP server, talking to the fake connector."""
    connector = FakeBotConnector()
    connector_server = TestServer(connector.app())
    await connector_server.start_server()
    # Teams' service URLs end in a slash ("https://smba.trafficmanager.net/emea/").
    service_url = str(connector_server.make_url("/"))
    handoff = MemoryHandoff(now=OPENED_AT, admins=frozenset({"aad-lead"}))
    channels = JsonFileChannelDirectory(tmp_path / "teams-channels.json")
    settings = TeamsSettings(app_id="", local_testing=True)
    integration = create_teams_bot(handoff, settings, channels)
    app = web.Application()
    app.add_routes(integration.routes())
    client = TestClient(TestServer(app))
    await client.start_server()
    try:
        yield TeamsWorld(connector, service_url, client, integration, handoff, channels)
    finally:
        await client.close()
        await connector_server.close()
