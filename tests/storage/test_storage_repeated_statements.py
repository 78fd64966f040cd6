"""A long-lived connection runs the same statements many times: PostgreSQL then switches to
generic plans, which must still find the partial unique indexes behind ON CONFLICT."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from engine.assessment import Assessment, Decision
from engine.events import ConversationMeta
from storage import conversations, escalations, outbox
from storage.db import Database

NOW = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
ASSESSMENT = Assessment(
    event_id="e1",
    score=60.0,
    level="escalate",
    notify=True,
    reasons=(),
    team="support",
    decision=Decision.OPEN,
)


@pytest.mark.postgres
def test_opening_many_escalations_on_one_connection_keeps_working(
    postgres_database: Database,
) -> None:
    with postgres_database.session() as session:
        for number in range(30):
            cid = f"c-{number}"
            conversations.lock_conversation(
                session=session, conversation_id=cid, meta=ConversationMeta(), now=NOW
            )
            opened = escalations.open_escalation(
                session=session,
                conversation_id=cid,
                assessment=ASSESSMENT,
                summary={},
                snapshot={},
                now=NOW,
            )
            with pytest.raises(escalations.EscalationAlreadyActive):
                escalations.open_escalation(
                    session=session,
                    conversation_id=cid,
                    assessment=ASSESSMENT,
                    summary={},
                    snapshot={},
                    now=NOW,
                )
            for _ in range(2):  # the second coalesces into the first
                outbox.enqueue(
                    session=session,
                    kind="update_card",
                    surface="slack",
                    escalation_id=opened.id,
                    payload={},
                    due_at=NOW,
                    dedupe_key=f"update:{opened.id}:slack",
                )
        assert len(outbox.pending(session=session)) == 30
        assert len(escalations.list_escalations(session=session, limit=100)) == 30
