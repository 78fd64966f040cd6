"""The rules in force, reloaded without a restart; a broken file never replaces good rules."""

from __future__ import annotations

import logging
from collections import deque
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


@dataclass(frozen=True)
class ReloadRecord:
    """One reload attempt: when, what asked for it, and whether the new rules took effect."""

    at: datetime
    trigger: str  # "start", "file changed", "SIGHUP", "admin", ...
    loaded: bool
    problems: tuple[str, ...] = ()


# How many reload attempts the store remembers (the metric counts all of them).
HISTORY_LENGTH = 50


class RulesStore:
    """Holds the current rules; `reload()` swaps them only for a file that loads cleanly."""

    def __init__(self, path: Path, metrics: Metrics, clock: Clock = utc_now) -> None:
        self.path = path
        self._metrics = metrics
        self._clock = clock
        self._rules = load_rules_file(path)  # the service refuses to start on a broken file
        self.loaded_at = clock()
        self.last_rejection: Rejection | None = None
        self.history: deque[ReloadRecord] = deque(maxlen=HISTORY_LENGTH)
        self.history.append(ReloadRecord(self.loaded_at, "start", loaded=True))
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

    def reload(self, trigger: str = "manual") -> bool:
        """Load the file again; keep the last good rules (and log why) when it is broken."""
        self._mtime = self._stat()
        try:
            rules = load_rules_file(self.path)
        except RulesError as error:
            problems = tuple(str(problem) for problem in error.problems)
            self._rejected(trigger, problems)
            log.error(
                "rules file %s rejected (%s); the previous rules stay in force:\n  %s",
                self.path,
                trigger,
                "\n  ".join(problems),
            )
            return False
        except OSError as error:
            self._rejected(trigger, (f"{self.path}: {error.strerror}",))
            log.error("rules file %s unreadable (%s); previous rules kept", self.path, error)
            return False
        self._rules = rules
        self.loaded_at = self._clock()
        self._metrics.rules_reloads.inc("loaded")
        self.history.append(ReloadRecord(self.loaded_at, trigger, loaded=True))
        log.info("rules reloaded from %s (%s)", self.path, trigger)
        return True

    def _rejected(self, trigger: str, problems: tuple[str, ...]) -> None:
        at = self._clock()
        self.last_rejection = Rejection(at, problems)
        self.history.append(ReloadRecord(at, trigger, loaded=False, problems=problems))
        self._metrics.rules_reloads.inc("rejected")

    def reload_if_changed(self) -> bool | None:
        """Reload when the file's modification time moved; None when it did not."""
        if self._stat() == self._mtime:
            return None
        return self.reload("file changed")
