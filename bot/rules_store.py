"""The rules in force, reloaded without a restart; a broken file never replaces good rules."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from bot.metrics import Metrics
from bot.pipeline import Clock, utc_now
from engine.rules import Rules
from engine.rules_loader import RulesError, load_rules_file

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Rejection:
    """The last rules file that was refused, and why."""

    at: datetime
    problems: tuple[str, ...]


class RulesStore:
    """Holds the current rules; `reload()` swaps them only for a file that loads cleanly."""

    def __init__(self, path: Path, metrics: Metrics, clock: Clock = utc_now) -> None:
        self.path = path
        self._metrics = metrics
        self._clock = clock
        self._rules = load_rules_file(path)  # the service refuses to start on a broken file
        self.loaded_at = clock()
        self.last_rejection: Rejection | None = None
        self._mtime = self._stat()
        metrics.rules_reloads.inc("loaded")

    def current(self) -> Rules:
        """The rules in force."""
        return self._rules

    def _stat(self) -> float | None:
        try:
            return self.path.stat().st_mtime
        except OSError:
            return None

    def reload(self) -> bool:
        """Load the file again; keep the last good rules (and log why) when it is broken."""
        self._mtime = self._stat()
        try:
            rules = load_rules_file(self.path)
        except RulesError as error:
            problems = tuple(str(problem) for problem in error.problems)
            self.last_rejection = Rejection(self._clock(), problems)
            self._metrics.rules_reloads.inc("rejected")
            log.error(
                "rules file %s rejected; the previous rules stay in force:\n  %s",
                self.path,
                "\n  ".join(problems),
            )
            return False
        except OSError as error:
            self.last_rejection = Rejection(self._clock(), (f"{self.path}: {error.strerror}",))
            self._metrics.rules_reloads.inc("rejected")
            log.error("rules file %s unreadable (%s); previous rules kept", self.path, error)
            return False
        self._rules = rules
        self.loaded_at = self._clock()
        self._metrics.rules_reloads.inc("loaded")
        log.info("rules reloaded from %s", self.path)
        return True

    def reload_if_changed(self) -> bool | None:
        """Reload when the file's modification time moved; None when it did not."""
        if self._stat() == self._mtime:
            return None
        return self.reload()
