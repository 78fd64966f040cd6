"""Which teams get an escalation: the routing tree of `rules.yaml`.

The tree works like Alertmanager's: the root route takes every conversation; its child routes are
tried in order and the first that matches wins, unless it says `continue: true`, in which case the
next siblings are tried as well. A route that matches hands the conversation down to its own
children the same way; when none of them matches, the route itself is the result. A route without
a `team` inherits its parent's.
"""

from __future__ import annotations

from collections.abc import Mapping

from engine.rules import Route, RouteMatch, Rules

__all__ = ["route_for"]


def route_for(
    rules: Rules,
    *,
    customer_tier: str | None,
    platform: str | None,
    language: str | None,
    metadata: Mapping[str, str],
    level: str | None,
) -> list[str]:
    """The teams an escalation goes to, in order, without repeats."""
    facts = _Facts(
        customer_tier=_fold(customer_tier),
        platform=_fold(platform),
        language=_fold(language),
        metadata={key: value.casefold() for key, value in metadata.items()},
        level_rank=_level_rank(rules, level),
        rules=rules,
    )
    teams: list[str] = []
    # The root route always matches, whatever its own `match` says (the loader rejects one).
    for team in _route(rules.routes, facts, inherited_team=None):
        if team not in teams:
            teams.append(team)
    return teams


class _Facts:
    """The conversation's facts, folded once so each route's test is a few comparisons."""

    __slots__ = ("customer_tier", "language", "level_rank", "metadata", "platform", "rules")

    def __init__(
        self,
        *,
        customer_tier: str | None,
        platform: str | None,
        language: str | None,
        metadata: dict[str, str],
        level_rank: int | None,
        rules: Rules,
    ) -> None:
        self.customer_tier = customer_tier
        self.platform = platform
        self.language = language
        self.metadata = metadata
        self.level_rank = level_rank
        self.rules = rules


def _route(route: Route, facts: _Facts, inherited_team: str | None) -> list[str]:
    team = route.team if route.team is not None else inherited_team
    found: list[str] = []
    for child in route.routes:
        if child.match is not None and not _matches(child.match, facts):
            continue
        found.extend(_route(child, facts, team))
        if not child.continue_:
            break
    if found:
        return found
    return [team] if team is not None else []


def _matches(match: RouteMatch, facts: _Facts) -> bool:
    if not _one_of(match.customer_tier, facts.customer_tier):
        return False
    if not _one_of(match.platform, facts.platform):
        return False
    if not _one_of(match.language, facts.language):
        return False
    if match.metadata:
        for key, wanted in match.metadata.items():
            actual = facts.metadata.get(key)
            if actual is None or actual != wanted.casefold():
                return False
    if match.min_level is not None:
        wanted_rank = _level_rank(facts.rules, match.min_level)
        if facts.level_rank is None or wanted_rank is None or facts.level_rank < wanted_rank:
            return False
    return True


def _one_of(wanted: tuple[str, ...] | None, actual: str | None) -> bool:
    if wanted is None:
        return True
    return actual is not None and any(value.casefold() == actual for value in wanted)


def _fold(value: str | None) -> str | None:
    return value.casefold() if value is not None else None


def _level_rank(rules: Rules, level: str | None) -> int | None:
    if level is None:
        return None
    for rank, defined in enumerate(rules.levels):
        if defined.name == level:
            return rank
    return None
