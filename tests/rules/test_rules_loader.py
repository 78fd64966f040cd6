"""An admin edits rules.yaml: good files load, every mistake is reported with file, line and key."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from apscheduler.triggers.cron import CronTrigger
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.rules import Signals
from engine.rules_loader import (
    RulesError,
    RulesProblem,
    check_rules_file,
    cron_fields,
    cron_problem,
    load_rules,
    load_rules_file,
)

TESTDATA = Path(__file__).parent / "testdata"
SHIPPED_RULES = Path(__file__).parents[2] / "rules.yaml"

MINIMAL = (TESTDATA / "good.minimal.yaml").read_text()

# Every bad fixture, pinned to the exact and complete list of problems an admin is shown.
BAD_FILES: dict[str, list[str]] = {
    "bad.choices.yaml": [
        "bad.choices.yaml:1: version: expected 1, got 2",
        (
            "bad.choices.yaml:3: redaction.kinds[1]: expected one of 'email', 'phone', 'card'"
            " or 'iban', got 'ssn'"
        ),
        (
            "bad.choices.yaml:13: teams.support.sla.steps[0].action: expected one of "
            "'remind', 'mention' or 'handoff', got 'page'"
        ),
    ],
    "bad.digest.yaml": [
        "bad.digest.yaml:8: teams.support.digest.cron: hour field '25': 25 is out of range 0-23",
        (
            "bad.digest.yaml:9: teams.support.digest.timezone: 'Europe/Berln' is not a known "
            "time zone; did you mean 'Europe/Berlin'?"
        ),
        (
            "bad.digest.yaml:13: teams.billing.digest.cron: expected 5 cron fields (minute "
            "hour day-of-month month day-of-week), got 4 in '0 9 * *'"
        ),
        (
            "bad.digest.yaml:14: teams.billing.digest.timezone: 'Mars/Olympus_Mons' is not a "
            "known time zone; use an IANA name such as 'Europe/Berlin' or 'UTC'"
        ),
        (
            "bad.digest.yaml:18: teams.leads.digest.cron: day of week field 'fri-mon': range "
            "'fri-mon' goes backwards"
        ),
    ],
    "bad.duplicate-key.yaml": [
        "bad.duplicate-key.yaml:4: levels[0].min_score: duplicate key; it is already set on line 3",
        "bad.duplicate-key.yaml:9: teams.support: duplicate key; it is already set on line 6",
    ],
    "bad.empty-match-list.yaml": [
        (
            "bad.empty-match-list.yaml:10: routes.routes[0].match.customer_tier: an empty "
            "list matches nothing; remove the key to match any value"
        ),
        (
            "bad.empty-match-list.yaml:10: routes.routes[0].match.language: an empty list "
            "matches nothing; remove the key to match any value"
        ),
    ],
    "bad.empty.yaml": [
        "bad.empty.yaml: the file is empty; it needs at least levels, teams and routes",
    ],
    "bad.indentation.yaml": [
        (
            "bad.indentation.yaml:4: invalid YAML: expected <block end>, but found '<block "
            "mapping start>' at column 4 (while parsing a block collection that starts on "
            "line 2)"
        ),
    ],
    "bad.levels-not-increasing.yaml": [
        (
            "bad.levels-not-increasing.yaml:8: levels[2].min_score: must be higher than "
            "levels[1].min_score (80), got 50; list levels from lowest to highest"
        ),
        (
            "bad.levels-not-increasing.yaml:9: levels[3].name: level 'urgent' is already "
            "defined by levels[1]"
        ),
    ],
    "bad.missing-keys.yaml": [
        "bad.missing-keys.yaml:2: levels[0].min_score: required key is missing",
        "bad.missing-keys.yaml:5: teams.support.slack.channel: required key is missing",
        "bad.missing-keys.yaml:8: teams.support.sla.steps[0].after_minutes: "
        "required key is missing",
    ],
    "bad.missing-sections.yaml": [
        "bad.missing-sections.yaml:2: levels: required key is missing",
        "bad.missing-sections.yaml:2: teams: required key is missing",
        "bad.missing-sections.yaml:2: routes: required key is missing",
    ],
    "bad.multiple-documents.yaml": [
        (
            "bad.multiple-documents.yaml:4: invalid YAML: expected a single document in the "
            "stream, but found another document at column 1"
        ),
    ],
    "bad.no-levels-no-teams.yaml": [
        "bad.no-levels-no-teams.yaml:1: levels: at least one level is needed",
        "bad.no-levels-no-teams.yaml:2: teams: at least one team is needed",
        (
            "bad.no-levels-no-teams.yaml:4: routes.team: team 'support' is not defined; "
            "defined teams: none"
        ),
    ],
    "bad.no-notifying-level.yaml": [
        (
            "bad.no-notifying-level.yaml:1: levels: no level has notify: true, so no "
            "escalation would ever post a card"
        ),
    ],
    "bad.not-a-mapping.yaml": [
        "bad.not-a-mapping.yaml:1: expected a mapping of settings at the top level, got a list",
    ],
    "bad.not-finite.yaml": [
        "bad.not-finite.yaml:3: levels[0].min_score: expected a finite number, got .inf",
    ],
    "bad.not-utf8.yaml": [
        "bad.not-utf8.yaml:2: not UTF-8 text: byte 0xe9 cannot be decoded",
    ],
    "bad.out-of-range.yaml": [
        "bad.out-of-range.yaml:3: signals.sentiment.weight: must be at most 100, got 150",
        "bad.out-of-range.yaml:4: signals.sentiment.negative_below: must be at least -1, got -2",
        "bad.out-of-range.yaml:6: signals.repetition.similarity: must be more than 0, got 0",
        "bad.out-of-range.yaml:7: signals.fallbacks: full_at (3) must be at least streak (5)",
        "bad.out-of-range.yaml:11: levels[0].name: must not be empty",
        "bad.out-of-range.yaml:12: levels[0].min_score: must be at least 0, got -1",
        (
            "bad.out-of-range.yaml:17: teams.support.sla.claim_within_minutes: must be more "
            "than 0, got 0"
        ),
    ],
    "bad.recovery-above-notify.yaml": [
        "bad.recovery-above-notify.yaml:8: recovery.below_score: must not be above the lowest "
        "notifying level's min_score (50), got 60",
    ],
    "bad.root-route.yaml": [
        (
            "bad.root-route.yaml:7: routes.team: the root route needs a team; routes without "
            "a team inherit it"
        ),
        (
            "bad.root-route.yaml:8: routes.match: the root route takes every conversation and"
            " cannot have a match; put the match on a route under routes.routes"
        ),
        "bad.root-route.yaml:9: routes.continue: the root route has no siblings to continue to",
    ],
    "bad.sla.yaml": [
        (
            "bad.sla.yaml:12: teams.support.sla.steps[1].after_minutes: must be later than "
            "steps[0].after_minutes (20), got 10; list steps in the order they happen"
        ),
        (
            "bad.sla.yaml:12: teams.support.sla.steps[1].target: a handoff step needs a "
            "target: the team to hand off to"
        ),
        (
            "bad.sla.yaml:16: teams.support.sla.steps[2].target: team 'support' cannot hand "
            "off to itself"
        ),
        (
            "bad.sla.yaml:19: teams.support.sla.steps[3].target: team 'lead' is not defined; "
            "defined teams: leads, support"
        ),
    ],
    "bad.after-hours.yaml": [
        (
            "bad.after-hours.yaml:8: teams.support.sla.after_hours: team 'night-shift' is not "
            "defined; defined teams: leads, support"
        ),
        (
            "bad.after-hours.yaml:12: teams.leads.sla.after_hours: team 'leads' cannot be its "
            "own after-hours target"
        ),
    ],
    "bad.team-without-channel.yaml": [
        (
            "bad.team-without-channel.yaml:7: teams.billing: the team has no slack or teams "
            "channel, so its cards cannot be posted"
        ),
    ],
    "bad.undefined-level.yaml": [
        (
            "bad.undefined-level.yaml:12: routes.routes[0].match.min_level: level 'critical' "
            "is not defined; defined levels: escalate, urgent"
        ),
    ],
    "bad.undefined-team.yaml": [
        (
            "bad.undefined-team.yaml:13: routes.routes[0].team: team 'tier-2' is not defined;"
            " defined teams: billing, support"
        ),
        (
            "bad.undefined-team.yaml:17: routes.routes[1].routes[0].team: team 'german' is "
            "not defined; defined teams: billing, support"
        ),
    ],
    "bad.unknown-key.yaml": [
        "bad.unknown-key.yaml:2: signals.sentimnet: unknown key; did you mean 'sentiment'?",
        "bad.unknown-key.yaml:5: signals.fallbacks.streek: unknown key; did you mean 'streak'?",
        (
            "bad.unknown-key.yaml:9: levels[0].colour: unknown key; known keys here: name, "
            "min_score, notify, mention"
        ),
        (
            "bad.unknown-key.yaml:18: routes.routes[1].match.tier: unknown key; did you mean "
            "'customer_tier'?"
        ),
    ],
    "bad.unreachable-route.yaml": [
        (
            "bad.unreachable-route.yaml:15: routes.routes[2]: this route is never reached: "
            "routes.routes[1] before it has no match and no continue: true, so it takes every"
            " conversation"
        ),
        (
            "bad.unreachable-route.yaml:17: routes.routes[3]: this route is never reached: "
            "routes.routes[1] before it has no match and no continue: true, so it takes every"
            " conversation"
        ),
    ],
    "bad.wrong-type.yaml": [
        "bad.wrong-type.yaml:3: signals.sentiment.weight: expected a number, got 'abc'",
        "bad.wrong-type.yaml:4: signals.sentiment.window: expected a whole number, got 2.5",
        "bad.wrong-type.yaml:6: signals.human_request.enabled: expected true or false, got 'yes'",
        (
            "bad.wrong-type.yaml:7: signals.human_request.extra_phrases: expected a list, got"
            " 'talk to a human'"
        ),
        "bad.wrong-type.yaml:10: levels[0].min_score: expected a number, got '50'",
        "bad.wrong-type.yaml:11: levels[0].notify: expected true or false, got 1",
        "bad.wrong-type.yaml:15: teams.support.slack.channel: expected text, got 123",
        "bad.wrong-type.yaml:16: teams.support.sla: expected a mapping, got 10",
        "bad.wrong-type.yaml:19: routes.routes: expected a list, got a mapping",
    ],
    "bad.whole-numbers.yaml": [
        "bad.whole-numbers.yaml:3: signals.sentiment.window: expected a whole number, got 2.0",
        "bad.whole-numbers.yaml:5: signals.long_conversation.turns: "
        "expected a whole number, got '1e3'",
        "bad.whole-numbers.yaml:16: routes.routes[1]: this route is never reached: "
        "routes.routes[0] before it has no match and no continue: true, "
        "so it takes every conversation",
    ],
    "bad.yaml-syntax.yaml": [
        (
            "bad.yaml-syntax.yaml:10: invalid YAML: found unexpected end of stream at column "
            "1 (while scanning a quoted scalar that starts on line 7)"
        ),
    ],
    "bad.yaml-tag.yaml": [
        "bad.yaml-tag.yaml:3: levels[0].min_score: "
        "unsupported YAML tag '!!python/object:os.system'",
        "bad.yaml-tag.yaml:4: teams: unsupported YAML tag '!!set'",
    ],
}


def problems_in(name: str) -> list[str]:
    """What `escalations rules check` prints for a fixture, named as the admin would name it."""
    ok, lines = check_rules_file(Path(name))
    assert not ok
    return lines


def problems_or_none(text: str) -> list[RulesProblem] | None:
    """None when the text loads; its problems when it is rejected; anything else escapes."""
    try:
        load_rules(text)
    except RulesError as error:
        return error.problems
    return None


@pytest.fixture(autouse=True)
def _in_testdata(monkeypatch: pytest.MonkeyPatch) -> None:
    # Fixtures are checked by their bare names, so messages read "bad.x.yaml:3: ...".
    monkeypatch.chdir(TESTDATA)


@pytest.mark.parametrize(("name", "expected"), sorted(BAD_FILES.items()))
def test_each_bad_file_is_rejected_with_exactly_its_problems(
    name: str, expected: list[str]
) -> None:
    assert problems_in(name) == expected


# These files leave every signal at its default (enabled): the count follows the engine.
SIGNALS = f"{len(Signals.model_fields)} signals ({len(Signals.model_fields)} enabled)"


def test_every_bad_fixture_is_in_the_table() -> None:
    assert sorted(path.name for path in TESTDATA.glob("bad.*.yaml")) == sorted(BAD_FILES)


@pytest.mark.parametrize(
    ("name", "summary"),
    [
        (
            "good.minimal.yaml",
            f"good.minimal.yaml: OK — {SIGNALS}, 1 level (escalate), 1 team, 1 route",
        ),
        (
            "good.anchors.yaml",
            f"good.anchors.yaml: OK — {SIGNALS}, 1 level (escalate), 2 teams, 1 route",
        ),
        (
            "good.routes-tree.yaml",
            f"good.routes-tree.yaml: OK — {SIGNALS}, "
            "3 levels (watch < escalate < urgent), 5 teams, 8 routes",
        ),
    ],
)
def test_a_good_file_checks_ok_with_a_one_line_summary(name: str, summary: str) -> None:
    assert check_rules_file(name) == (True, [summary])


def test_every_good_fixture_is_checked() -> None:
    assert {path.name for path in TESTDATA.glob("good.*.yaml")} == {
        "good.minimal.yaml",
        "good.anchors.yaml",
        "good.routes-tree.yaml",
    }


def test_the_shipped_rules_file_loads_without_a_single_problem() -> None:
    ok, lines = check_rules_file(SHIPPED_RULES)
    assert ok, "\n".join(lines)
    assert "3 levels (watch < escalate < urgent), 4 teams" in lines[0]


def test_the_shipped_rules_file_documents_every_signal() -> None:
    rules = load_rules_file(SHIPPED_RULES)
    text = SHIPPED_RULES.read_text()
    for name in Signals.model_fields:
        assert f"\n  {name}:\n" in text, f"signal {name!r} is missing from rules.yaml"
    assert [level.name for level in rules.levels] == ["watch", "escalate", "urgent"]
    assert [level.notify for level in rules.levels] == [False, True, True]
    assert rules.levels[2].mention == "@here"
    assert set(rules.teams) == {"support", "billing", "enterprise", "leads"}


def test_yaml_integers_fill_number_fields_and_lists_fill_list_fields() -> None:
    rules = load_rules(
        MINIMAL
        + "signals:\n"
        + "  sentiment: {drop: 1, negative_below: -1}\n"
        + "  human_request: {extra_phrases: [get me a person, real agent]}\n"
        + "redaction: {kinds: [email, iban]}\n"
    )
    assert rules.signals.sentiment.drop == 1.0
    assert rules.signals.sentiment.negative_below == -1.0
    assert rules.signals.human_request.extra_phrases == ("get me a person", "real agent")
    assert rules.redaction.kinds == ("email", "iban")


def test_a_match_takes_one_value_or_a_list_of_values() -> None:
    rules = load_rules(
        MINIMAL
        + "  routes:\n"
        + "    - match: {customer_tier: enterprise, platform: [sunshine, botpress]}\n"
    )
    match = rules.routes.routes[0].match
    assert match is not None
    assert match.customer_tier == ("enterprise",)
    assert match.platform == ("sunshine", "botpress")


def test_yes_no_on_off_are_text_not_booleans() -> None:
    # YAML 1.1 reads a bare `on` as True; a team called "on" must still be a team called "on".
    rules = load_rules(MINIMAL.replace("support", "on"))
    assert list(rules.teams) == ["on"]
    assert rules.routes.team == "on"
    with pytest.raises(RulesError) as caught:
        load_rules(MINIMAL + "redaction: {enabled: yes}\n")
    assert str(caught.value) == (
        "rules.yaml:11: redaction.enabled: expected true or false, got 'yes'"
    )


def test_the_error_message_lists_every_problem_one_per_line() -> None:
    with pytest.raises(RulesError) as caught:
        load_rules("levels: []\nteams: {}\nroutes: {team: support}\n", filename="prod.yaml")
    assert str(caught.value) == (
        "prod.yaml:1: levels: at least one level is needed\n"
        "prod.yaml:2: teams: at least one team is needed\n"
        "prod.yaml:3: routes.team: team 'support' is not defined; defined teams: none"
    )
    assert caught.value.problems[0] == RulesProblem(
        "prod.yaml", 1, "levels", "at least one level is needed"
    )


def test_a_problem_without_a_line_or_key_still_names_the_file() -> None:
    assert str(RulesProblem("rules.yaml", None, "", "the file is empty")) == (
        "rules.yaml: the file is empty"
    )
    assert str(RulesProblem("rules.yaml", None, "levels", "bad")) == "rules.yaml: levels: bad"


def test_a_missing_file_is_reported_not_raised_as_an_os_error() -> None:
    assert check_rules_file("no-such-rules.yaml") == (
        False,
        ["no-such-rules.yaml: cannot read the file: No such file or directory"],
    )


def test_a_billion_laughs_file_is_stopped_early() -> None:
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for index in range(1, 9):
        previous = f"*a{index - 1}"
        lines.append(f"a{index}: &a{index} [{', '.join([previous] * 9)}]")
    with pytest.raises(RulesError) as caught:
        load_rules("\n".join(lines), filename="laughs.yaml")
    assert str(caught.value) == (
        "laughs.yaml: the file expands to more than 50000 values (YAML aliases?)"
    )


def test_a_file_nested_absurdly_deep_is_rejected() -> None:
    with pytest.raises(RulesError) as caught:
        load_rules("routes: " + "{routes: [" * 30 + "]}" * 30, filename="deep.yaml")
    assert str(caught.value) == "deep.yaml: the file is nested deeper than 40 levels"


def test_a_recursive_alias_is_rejected() -> None:
    with pytest.raises(RulesError) as caught:
        load_rules("routes: &loop {routes: [*loop]}", filename="loop.yaml")
    assert str(caught.value) == "loop.yaml: the file is nested deeper than 40 levels"


@pytest.mark.parametrize(
    ("cron", "problem"),
    [
        ("0 9 * * 1-5", None),
        ("*/15 8-18 * jan-dec mon-fri", None),
        ("0 0 1,15 * *", None),
        ("0 9 * * 0,7", None),
        ("0 9 1 * 1", "restrict the day of month or the day of week, not both, in '0 9 1 * 1'"),
        (
            "@daily",
            "expected 5 cron fields (minute hour day-of-month month day-of-week), "
            "got 1 in '@daily'",
        ),
        ("60 * * * *", "minute field '60': 60 is out of range 0-59"),
        ("0 9 0 * *", "day of month field '0': 0 is out of range 1-31"),
        ("0 9 * 13 *", "month field '13': 13 is out of range 1-12"),
        ("0 9 * * 8", "day of week field '8': 8 is out of range 0-7"),
        ("0 9 * * monday", "day of week field 'monday': 'monday' is not a number or a name"),
        ("0 9-x * * *", "hour field '9-x': 'x' is not a number"),
        ("*/0 * * * *", "minute field '*/0': step '0' must be a whole number above 0"),
        ("5/10 * * * *", "minute field '5/10': a step needs '*' or a range before it, got '5'"),
        ("0 18-9 * * *", "hour field '18-9': range '18-9' goes backwards"),
        ("0 9,,10 * * *", "hour field '9,,10': '' is not a number"),
    ],
)
def test_digest_cron_expressions_are_standard_five_field_crons(
    cron: str, problem: str | None
) -> None:
    assert cron_problem(cron) == problem


@pytest.mark.parametrize(
    ("cron", "fire_days"),
    [
        ("0 9 * * 1-5", ["Mon", "Tue", "Wed", "Thu", "Fri"]),
        ("0 9 * * 0", ["Sun"]),
        ("0 9 * * 7", ["Sun"]),
        ("0 9 * * fri-sat", ["Fri", "Sat"]),
        ("0 9 * * */2", ["Tue", "Thu", "Sat", "Sun"]),
        ("0 9 * * *", ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]),
    ],
)
def test_a_digest_cron_fires_on_the_days_cron_means_in_apscheduler(
    cron: str, fire_days: list[str]
) -> None:
    berlin = ZoneInfo("Europe/Berlin")
    trigger = CronTrigger(**cron_fields(cron), timezone=berlin)
    # Walk one week from Monday 3 June 2024, 00:00 Berlin time.
    now = datetime(2024, 6, 3, tzinfo=berlin)
    week_end = now + timedelta(days=7)
    fired: list[str] = []
    previous = None
    while (fire := trigger.get_next_fire_time(previous, now)) is not None and fire < week_end:
        assert (fire.hour, fire.minute) == (9, 0)
        fired.append(fire.strftime("%a"))
        previous, now = fire, fire + timedelta(seconds=1)
    order = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
    assert fired == [day for day in order if day in fire_days]


def test_cron_fields_refuses_an_invalid_cron_with_the_same_message() -> None:
    with pytest.raises(ValueError, match=r"^hour field '24': 24 is out of range 0-23$"):
        cron_fields("0 24 * * *")


@settings(deadline=None, max_examples=200)
@given(st.text(max_size=300))
def test_any_text_either_loads_or_raises_rules_error(text: str) -> None:
    problems = problems_or_none(text)
    assert problems is None or problems
    assert all(str(problem).startswith("rules.yaml") for problem in problems or [])


@settings(deadline=None, max_examples=200)
@given(st.lists(st.sampled_from(SHIPPED_RULES.read_text().splitlines()), max_size=60))
def test_any_jumble_of_real_rules_lines_either_loads_or_raises_rules_error(
    lines: list[str],
) -> None:
    problems = problems_or_none("\n".join(lines))
    assert problems is None or problems
