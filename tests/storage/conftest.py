"""Fixtures for storage tests."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import pytest

from storage.db import Database
from storage.escalations import EscalationRecord
from tests.storage.storage_helpers import T0, create_escalation

OpenEscalation = Callable[..., EscalationRecord]


@pytest.fixture
def open_escalation(database: Database) -> OpenEscalation:
    """Open an escalation on a (new) conversation and commit it."""

    def make(
        conversation_id: str = "conv-1",
        *,
        now: datetime = T0,
        team: str | None = "tier-1",
    ) -> EscalationRecord:
        return create_escalation(database, conversation_id, now=now, team=team)

    return make
