"""The retention job: customers' transcripts are deleted once the retention period has passed.

`ESCALATIONS_RETENTION_DAYS` (default 90) sets the period; `0` keeps everything. The job runs
at start-up and then every hour; several replicas running it at once do no harm (a purge only
touches rows not purged yet). Aggregate numbers (escalations, their times, levels and teams)
are kept for digests and the dashboard; see `storage.retention`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from datetime import timedelta

from bot.config import SettingsError
from bot.pipeline import Clock, utc_now
from storage.db import Database
from storage.retention import RetentionResult, purge_expired

log = logging.getLogger(__name__)

RETENTION_DAYS_ENV = "ESCALATIONS_RETENTION_DAYS"
DEFAULT_RETENTION_DAYS = 90
RUN_EVERY_SECONDS = 3600.0


def retention_days(environ: Mapping[str, str]) -> int:
    """The configured retention period in days (0: keep forever); raises SettingsError."""
    raw = environ.get(RETENTION_DAYS_ENV, "").strip()
    if not raw:
        return DEFAULT_RETENTION_DAYS
    try:
        days = int(raw)
    except ValueError:
        raise SettingsError(f"{RETENTION_DAYS_ENV}: expected a whole number, got {raw!r}") from None
    if days < 0:
        raise SettingsError(f"{RETENTION_DAYS_ENV}: must be 0 (keep forever) or more, got {days}")
    return days


class RetentionJob:
    """Purges what is older than the retention period, now or on a schedule."""

    def __init__(self, database: Database, days: int, clock: Clock = utc_now) -> None:
        self._database = database
        self.days = days
        self._clock = clock

    def run_once(self) -> RetentionResult | None:
        """Purge now; None when retention is off (days = 0)."""
        if self.days == 0:
            return None
        cutoff = self._clock() - timedelta(days=self.days)
        with self._database.session() as session:
            result = purge_expired(session=session, cutoff=cutoff)
        if result.conversations or result.outbox_rows:
            log.info(
                "retention: removed the transcripts of %d conversations (%d events) and %d "
                "finished deliveries older than %d days",
                result.conversations,
                result.events,
                result.outbox_rows,
                self.days,
            )
        return result

    async def run(self, every_seconds: float = RUN_EVERY_SECONDS) -> None:
        """Purge at once, then every `every_seconds`, until cancelled; failures are logged."""
        if self.days == 0:
            log.info("retention is off (%s=0): transcripts are kept forever", RETENTION_DAYS_ENV)
            return
        while True:
            try:
                await asyncio.to_thread(self.run_once)
            except Exception:
                log.exception("retention purge failed; trying again at the next run")
            await asyncio.sleep(every_seconds)
