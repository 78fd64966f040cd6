"""The `idle` section of a team in rules.yaml: checked like every other key, with its line."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.rules_loader import RulesError, load_rules

SHIPPED = (Path(__file__).resolve().parents[2] / "rules.yaml").read_text(encoding="utf-8")
SUPPORT_IDLE = "      remind_after_minutes: 10\n      release_after_minutes: 10\n"


def with_support_idle(lines: str) -> str:
    assert SUPPORT_IDLE in SHIPPED
    return SHIPPED.replace(SUPPORT_IDLE, lines, 1)


def test_the_shipped_teams_remind_and_release_and_the_leads_are_not_watched() -> None:
    rules = load_rules(SHIPPED)
    settings = {
        name: (team.idle.remind_after_minutes, team.idle.release_after_minutes)
        for name, team in rules.teams.items()
        if team.idle is not None
    }
    assert settings == {"support": (10, 10), "billing": (15, 15), "enterprise": (5, 5)}


def test_remind_only_is_written_as_a_null_release() -> None:
    rules = load_rules(
        with_support_idle("      remind_after_minutes: 10\n      release_after_minutes: null\n")
    )
    idle = rules.teams["support"].idle
    assert idle is not None
    assert idle.release_after_minutes is None


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        (
            "      remind_after_minutes: 0\n",
            "rules.yaml:{line}: teams.support.idle."
            "remind_after_minutes: must be more than 0, got 0",
        ),
        (
            "      remind_after_minute: 10\n",
            "rules.yaml:{line}: teams.support.idle."
            "remind_after_minute: unknown key; "
            "did you mean 'remind_after_minutes'?",
        ),
        (
            '      remind_after_minutes: "10"\n',
            "rules.yaml:{line}: teams.support.idle."
            "remind_after_minutes: expected a number, got '10'",
        ),
        (
            "      release_after_minutes: -5\n",
            "rules.yaml:{line}: teams.support.idle."
            "release_after_minutes: must be more than 0, got -5",
        ),
    ],
)
def test_a_bad_idle_setting_is_refused_with_its_line(lines: str, message: str) -> None:
    with pytest.raises(RulesError) as refused:
        load_rules(with_support_idle(lines))
    # The line of the support team's first idle key, wherever the shipped file has it.
    line = SHIPPED[: SHIPPED.index(SUPPORT_IDLE)].count("\n") + 1
    assert str(refused.value) == message.format(line=line)
