"""An escalation finds its team(s) through the routing tree an admin wrote in rules.yaml."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TypedDict, Unpack

import pytest

from engine.routing import route_for
from engine.rules import Rules
from engine.rules_loader import load_rules, load_rules_file

TREE = load_rules_file(Path(__file__).parent / "testdata" / "good.routes-tree.yaml")


class Conversation(TypedDict, total=False):
    """What routing looks at; a story names only what it cares about."""

    customer_tier: str | None
    platform: str | None
    language: str | None
    metadata: Mapping[str, str]
    level: str | None


def teams_for(rules: Rules = TREE, **conversation: Unpack[Conversation]) -> list[str]:
    """Route a conversation: a generic-platform one at level escalate unless the story says."""
    return route_for(
        rules,
        customer_tier=conversation.get("customer_tier"),
        platform=conversation.get("platform", "generic"),
        language=conversation.get("language"),
        metadata=conversation.get("metadata", {}),
        level=conversation.get("level", "escalate"),
    )


@pytest.mark.parametrize(
    ("story", "conversation", "teams"),
    [
        ("nothing special goes to the root team", {}, ["support"]),
        ("an unknown platform goes to the root team", {"platform": None}, ["support"]),
        ("tiers match ignoring case", {"customer_tier": "ENTERPRISE"}, ["enterprise"]),
        ("any listed tier matches", {"customer_tier": "premium"}, ["enterprise"]),
        ("an unlisted tier does not match", {"customer_tier": "free"}, ["support"]),
        (
            "continue lets a later sibling add its team",
            {"customer_tier": "enterprise", "metadata": {"queue": "billing", "region": "eu"}},
            ["enterprise", "billing"],
        ),
        (
            "metadata needs every given key",
            {"metadata": {"queue": "billing"}},
            ["support"],
        ),
        (
            "metadata values match ignoring case, extra keys do not matter",
            {"metadata": {"queue": "Billing", "region": "EU", "channel": "web"}},
            ["billing"],
        ),
        (
            "metadata keys are exact",
            {"metadata": {"Queue": "billing", "region": "eu"}},
            ["support"],
        ),
        (
            "a route whose children do not match is the result itself",
            {"language": "de", "level": "escalate"},
            ["german"],
        ),
        (
            "a matching child wins over its parent",
            {"language": "de", "level": "urgent"},
            ["leads"],
        ),
        (
            "the first match wins: later siblings are not tried",
            {"language": "de", "platform": "sunshine", "level": "escalate"},
            ["german"],
        ),
        (
            "min_level matches the level itself",
            {"platform": "sunshine", "level": "escalate"},
            ["leads", "support"],
        ),
        (
            "min_level matches a higher level",
            {"platform": "botpress", "level": "urgent"},
            ["leads", "support"],
        ),
        (
            "min_level does not match a lower level; the catch-all child inherits the root team",
            {"platform": "sunshine", "level": "watch"},
            ["support"],
        ),
        (
            "min_level does not match when there is no level yet",
            {"platform": "sunshine", "level": None},
            ["support"],
        ),
        (
            "min_level does not match an unknown level",
            {"platform": "sunshine", "level": "apocalyptic"},
            ["support"],
        ),
        (
            "continue carries on into a nested tree",
            {"customer_tier": "premium", "language": "de", "level": "urgent"},
            ["enterprise", "leads"],
        ),
    ],
)
def test_routing_table(story: str, conversation: Conversation, teams: list[str]) -> None:
    assert teams_for(**conversation) == teams, story


RULES_HEAD = """
levels:
  - {name: escalate, min_score: 50}
teams:
  support: {slack: {channel: "#support"}}
  vip: {slack: {channel: "#vip"}}
"""


def test_a_team_reached_twice_is_listed_once() -> None:
    rules = load_rules(
        RULES_HEAD
        + """
routes:
  team: support
  routes:
    - {match: {customer_tier: gold}, team: support, continue: true}
    - {match: {language: en}, team: vip, continue: true}
    - {team: support}
"""
    )
    assert teams_for(rules, customer_tier="gold", language="en") == ["support", "vip"]


def test_children_inherit_the_nearest_team_above_them() -> None:
    rules = load_rules(
        RULES_HEAD
        + """
routes:
  team: support
  routes:
    - match: {customer_tier: gold}
      team: vip
      routes:
        - match: {language: en}
          routes:
            - match: {platform: sunshine}
"""
    )
    assert teams_for(rules, customer_tier="gold", language="en", platform="sunshine") == ["vip"]
    assert teams_for(rules, language="en", platform="sunshine") == ["support"]


def test_match_fields_must_all_hold() -> None:
    rules = load_rules(
        RULES_HEAD
        + """
routes:
  team: support
  routes:
    - match: {customer_tier: gold, language: [en, fr], platform: sunshine}
      team: vip
"""
    )
    assert teams_for(rules, customer_tier="gold", language="FR", platform="Sunshine") == ["vip"]
    assert teams_for(rules, customer_tier="gold", language="de", platform="sunshine") == ["support"]
    assert teams_for(rules, customer_tier="gold", language=None, platform="sunshine") == ["support"]
