"""Fixtures for the Teams stories: the whole service with Teams on, and a fake Bot Connector."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from storage.db import Database
from tests.teams.teams_world import TeamsWorld, open_world


@pytest.fixture
async def world(database: Database, tmp_path: Path) -> AsyncIterator[TeamsWorld]:
    """The service on the test's database (SQLite, then PostgreSQL), Teams' side on localhost."""
    async with open_world(database, tmp_path) as opened:
        yield opened
