"""Fixtures for storage tests."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import pytest

from storage import conversations, escalations
from storage.db import Database
from storage.escalations import EscalationRecord
from tests.storage.storage_helpers import META, T0, assessment

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
        with database.session() as session:
            conversations.lock_conversation(
                session=session, conversation_id=conversation_id, meta=META, now=now
            )
            return escalations.open_escalation(
                session=session,
                conversation_id=conversation_id,
                assessment=assessment(team=team),
                summary={"wants": ["a refund"]},
                snapshot={"route": "default", "sla": [{"after_minutes": 5}]},
                now=now,
            )

    return make
