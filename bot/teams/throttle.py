"""Stay inside Teams' per-conversation message limits before Teams has to say 429."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

from bot.notifier import RateLimited

# Teams' documented limits for one bot in one conversation: (window seconds, messages allowed).
TEAMS_CONVERSATION_LIMITS: tuple[tuple[float, int], ...] = (
    (1.0, 7),
    (2.0, 8),
    (30.0, 60),
    (3600.0, 1800),
)


class ConversationThrottle:
    """Sliding-window budget per conversation; over budget raises `RateLimited` instead of waiting.

    Raising rather than sleeping hands the wait to the delivery outbox, which already knows how to
    retry later without holding a worker.
    """

    def __init__(
        self,
        limits: tuple[tuple[float, int], ...] = TEAMS_CONVERSATION_LIMITS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._limits = limits
        self._clock = clock
        self._longest = max(window for window, _ in limits)
        self._sent: dict[str, deque[float]] = {}

    def acquire(self, conversation: str) -> None:
        """Count one message to `conversation`, or raise RateLimited saying how long to wait."""
        now = self._clock()
        sent = self._sent.setdefault(conversation, deque())
        while sent and sent[0] <= now - self._longest:
            sent.popleft()
        wait = 0.0
        for window, allowed in self._limits:
            recent = [moment for moment in sent if moment > now - window]
            if len(recent) >= allowed:
                # The oldest message in the window must age out before another fits.
                wait = max(wait, recent[-allowed] + window - now)
        if wait > 0:
            raise RateLimited(wait, "Teams per-conversation limit")
        sent.append(now)
