"""Load `rules.yaml`: every problem in the file reported with file, line and key path.

The shape follows Prometheus Alertmanager's config loading: a pure `load_rules(text)` and a file
wrapper; strict parsing where an unknown key is an error; each model checks its own invariants;
then one pass over the whole file checks what refers to what (routes to teams, routes to levels,
SLA hand-offs to teams) and what would silently never work (a route no conversation can reach).

How it works: PyYAML composes the text into nodes, which keep their line numbers. We build plain
JSON-shaped data from the nodes ourselves, recording the line of every key path and catching what
PyYAML would silently accept (duplicate keys). The data is then validated by pydantic in JSON
mode: the models are strict, and JSON mode keeps them strict ("5" is not a number, 1 is not true)
while letting YAML lists fill tuple fields and YAML integers fill float fields. Each pydantic
error's `loc` is mapped back to a line and rewritten into a short sentence an admin can act on.
"""

from __future__ import annotations

import difflib
import functools
import json
import math
import re
import types
import typing
import zoneinfo
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from engine.rules import Route, Rules, Signals

__all__ = [
    "RulesError",
    "RulesProblem",
    "check_rules_file",
    "cron_fields",
    "cron_problem",
    "load_rules",
    "load_rules_file",
    "summarize_rules",
]

KeyPath = tuple[str | int, ...]

# The only YAML types a rules file needs; anything else (`!!set`, `!!binary`, `!!python/...`) is
# reported rather than built.
_PLAIN_TAGS = frozenset(
    f"tag:yaml.org,2002:{name}"
    for name in ("map", "seq", "str", "int", "float", "bool", "null", "timestamp")
)
# Deeper than any sensible rules file, shallow enough that nothing recurses into trouble.
MAX_DEPTH = 40
# YAML aliases can expand a few lines into millions of values ("billion laughs"); stop early.
MAX_VALUES = 50_000


@dataclass(frozen=True, slots=True)
class RulesProblem:
    """One thing wrong in a rules file, printed as `FILE:LINE: key.path: what is wrong`."""

    file: str
    line: int | None
    path: str
    message: str

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


class RulesError(ValueError):
    """The rules file is not usable; `problems` lists everything wrong with it, in file order."""

    def __init__(self, problems: list[RulesProblem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(problem) for problem in problems))


def load_rules(text: str, filename: str = "rules.yaml") -> Rules:
    """Parse and check rules text; raise RulesError listing every problem found."""
    loader = _Loader(filename)
    rules = loader.load(text)
    if loader.problems or rules is None:
        raise RulesError(loader.sorted_problems())
    return rules


def load_rules_file(path: str | Path) -> Rules:
    """Read, parse and check a rules file; raise RulesError listing every problem found."""
    filename = str(path)
    try:
        raw = Path(path).read_bytes()
    except OSError as error:
        reason = error.strerror or type(error).__name__
        problem = RulesProblem(filename, None, "", f"cannot read the file: {reason}")
        raise RulesError([problem]) from None
    try:
        # utf-8-sig: editors on Windows like to start files with a byte-order mark.
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = raw.count(b"\n", 0, error.start) + 1
        message = f"not UTF-8 text: byte 0x{raw[error.start]:02x} cannot be decoded"
        raise RulesError([RulesProblem(filename, line, "", message)]) from None
    return load_rules(text, filename)


def check_rules_file(path: str | Path) -> tuple[bool, list[str]]:
    """Check a rules file for `escalations rules check`: (True, [summary]) or (False, problems)."""
    try:
        rules = load_rules_file(path)
    except RulesError as error:
        return False, [str(problem) for problem in error.problems]
    return True, [f"{path}: OK — {summarize_rules(rules)}"]


def summarize_rules(rules: Rules) -> str:
    """One line saying what a rules file holds: signals, levels, teams and routes."""
    signals = [getattr(rules.signals, name) for name in Signals.model_fields]
    enabled = sum(1 for signal in signals if signal.enabled)
    levels = " < ".join(level.name for level in rules.levels)
    routes = sum(1 for _ in _walk_routes(rules.routes))
    return (
        f"{_count(len(signals), 'signal')} ({enabled} enabled), "
        f"{_count(len(rules.levels), 'level')} ({levels}), "
        f"{_count(len(rules.teams), 'team')}, {_count(routes, 'route')}"
    )


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


def _walk_routes(route: Route) -> Iterator[Route]:
    yield route
    for child in route.routes:
        yield from _walk_routes(child)


# --- from YAML nodes to data, remembering lines --------------------------------------------------


class _TooLarge(Exception):
    """Raised inside the builder to stop at once; turned into one problem."""


class _Loader:
    """One load of one text: collects problems and the line of every key path."""

    def __init__(self, filename: str) -> None:
        self.filename = filename
        self.problems: list[RulesProblem] = []
        self.lines: dict[KeyPath, int] = {}
        self._values = 0
        # Values already reported while reading the YAML: the models must not report them again.
        self._unreadable: list[KeyPath] = []
        self._scalars = SafeConstructor()

    def problem(self, path: KeyPath, message: str, line: int | None = None) -> None:
        if line is None:
            line = self.line_of(path)
        self.problems.append(RulesProblem(self.filename, line, _render_path(path), message))

    def line_of(self, path: Sequence[str | int]) -> int | None:
        """The line of the longest prefix of `path` that the file spells out."""
        for end in range(len(path), -1, -1):
            line = self.lines.get(tuple(path[:end]))
            if line is not None:
                return line
        return None

    def sorted_problems(self) -> list[RulesProblem]:
        # Stable: problems on one line keep the order they were found in.
        return sorted(self.problems, key=lambda problem: problem.line or 0)

    def load(self, text: str) -> Rules | None:
        root = self._compose(text)
        if root is None:
            return None
        try:
            data = self._build(root, (), 0)
        except _TooLarge as error:
            self.problems.append(RulesProblem(self.filename, None, "", str(error)))
            return None
        if not isinstance(data, dict):
            self.problem((), f"expected a mapping of settings at the top level, got {_kind(data)}")
            return None
        rules = self._validate(data)
        _CrossChecks(self, data).run()
        return rules

    def _compose(self, text: str) -> Node | None:
        try:
            # SafeLoader: a rules file must never be able to build Python objects.
            root = yaml.compose(text, Loader=yaml.SafeLoader)
        except yaml.MarkedYAMLError as error:
            line, message = _yaml_error(error)
            self.problems.append(RulesProblem(self.filename, line, "", message))
            return None
        except yaml.reader.ReaderError as error:
            line = text.count("\n", 0, error.position) + 1
            code = error.character if isinstance(error.character, int) else ord(error.character)
            message = f"invalid YAML: character #x{code:04x} is not allowed in a YAML file"
            self.problems.append(RulesProblem(self.filename, line, "", message))
            return None
        except RecursionError:
            message = f"invalid YAML: nested deeper than {MAX_DEPTH} levels"
            self.problems.append(RulesProblem(self.filename, None, "", message))
            return None
        if root is None:
            message = "the file is empty; it needs at least levels, teams and routes"
            self.problems.append(RulesProblem(self.filename, None, "", message))
        return root

    def _build(self, node: Node, path: KeyPath, depth: int) -> Any:
        self._values += 1
        if self._values > MAX_VALUES:
            raise _TooLarge(f"the file expands to more than {MAX_VALUES} values (YAML aliases?)")
        if depth > MAX_DEPTH:
            raise _TooLarge(f"the file is nested deeper than {MAX_DEPTH} levels")
        self.lines.setdefault(path, node.start_mark.line + 1)
        if node.tag not in _PLAIN_TAGS:
            return self._unreadable_value(path, f"unsupported YAML tag '{_short_tag(node.tag)}'")
        if isinstance(node, MappingNode):
            return self._mapping(node, path, depth)
        if isinstance(node, SequenceNode):
            return [
                self._build_item(item, (*path, index), depth)
                for index, item in enumerate(node.value)
            ]
        assert isinstance(node, ScalarNode)
        return self._scalar(node, path)

    def _build_item(self, node: Node, path: KeyPath, depth: int) -> Any:
        self.lines[path] = node.start_mark.line + 1
        return self._build(node, path, depth + 1)

    def _mapping(self, node: MappingNode, path: KeyPath, depth: int) -> dict[str, Any]:
        result: dict[str, Any] = {}
        first_seen: dict[str, int] = {}
        merges: list[Node] = []
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                merges.append(value_node)
                continue
            key_line = key_node.start_mark.line + 1
            if not isinstance(key_node, ScalarNode):
                message = f"a key must be plain text, not {_node_kind(key_node)}"
                self.problem(path, message, line=key_line)
                continue
            # Keys are taken as written: `on:` is the key "on", not PyYAML's boolean True.
            key = str(key_node.value)
            if key in first_seen:
                message = f"duplicate key; it is already set on line {first_seen[key]}"
                self.problem((*path, key), message, line=key_line)
                continue
            first_seen[key] = key_line
            self.lines[(*path, key)] = key_line
            result[key] = self._build(value_node, (*path, key), depth + 1)
        # `<<: *defaults` merges: keys written out here win over merged ones, as YAML says.
        for merge_node in reversed(merges):
            sources = merge_node.value if isinstance(merge_node, SequenceNode) else [merge_node]
            for source in sources:
                if not isinstance(source, MappingNode):
                    self.problem(path, "a `<<` merge needs a mapping or a list of mappings")
                    continue
                for key, value in self._mapping(source, path, depth + 1).items():
                    if key not in first_seen:
                        result[key] = value
        for key, line in first_seen.items():
            self.lines[(*path, key)] = line
        return result

    def _scalar(self, node: ScalarNode, path: KeyPath) -> Any:
        tag = node.tag
        # YAML 1.1 reads yes/no/on/off as booleans, so `team: on` would be True; like YAML 1.2,
        # only true and false are booleans here, and the other words stay text.
        bool_word = tag == "tag:yaml.org,2002:bool" and node.value.lower() not in ("true", "false")
        if bool_word or tag in ("tag:yaml.org,2002:str", "tag:yaml.org,2002:timestamp"):
            # A date-like value stays text: no rules field holds a date.
            return str(node.value)
        constructors = {
            "tag:yaml.org,2002:int": self._scalars.construct_yaml_int,
            "tag:yaml.org,2002:float": self._scalars.construct_yaml_float,
            "tag:yaml.org,2002:bool": self._scalars.construct_yaml_bool,
            "tag:yaml.org,2002:null": self._scalars.construct_yaml_null,
        }
        construct = constructors.get(tag)
        if construct is None:
            return self._unreadable_value(path, f"unsupported YAML tag '{_short_tag(tag)}'")
        try:
            value = construct(node)
        except (ValueError, yaml.YAMLError):
            message = f"'{node.value}' is not a valid {_short_tag(tag).lstrip('!')}"
            return self._unreadable_value(path, message)
        if isinstance(value, float) and not math.isfinite(value):
            return self._unreadable_value(path, f"expected a finite number, got {node.value}")
        return value

    def _unreadable_value(self, path: KeyPath, message: str) -> None:
        self.problem(path, message)
        self._unreadable.append(path)

    # --- the models ----------------------------------------------------------------------------

    def _validate(self, data: dict[str, Any]) -> Rules | None:
        try:
            return Rules.model_validate_json(json.dumps(data))
        except ValidationError as error:
            for details in error.errors(include_url=False):
                self._model_problem(details)
            return None

    def _model_problem(self, details: ErrorDetails) -> None:
        loc = tuple(details["loc"])
        if any(loc[: len(path)] == path for path in self._unreadable):
            return
        kind = details["type"]
        if kind == "extra_forbidden":
            key = str(loc[-1])
            self.problem(loc, _unknown_key_message(key, _known_keys(loc[:-1])))
        elif kind == "missing":
            # A missing key has no line of its own: point at the mapping that should hold it.
            self.problem(loc, "required key is missing", line=self.line_of(loc[:-1]))
        else:
            self.problem(loc, _rewrite(details))


def _yaml_error(error: yaml.MarkedYAMLError) -> tuple[int | None, str]:
    """The line and an admin-readable sentence for a YAML syntax error."""
    mark = error.problem_mark or error.context_mark
    line = mark.line + 1 if mark else None
    problem = error.problem or "cannot parse"
    at = f" at column {mark.column + 1}" if mark else ""
    context = error.context
    if context and problem.startswith("but "):
        # PyYAML phrased these as one sentence: "expected a single document ..., but found ...".
        return line, f"invalid YAML: {context}, {problem}{at}"
    message = f"invalid YAML: {problem}{at}"
    if context:
        start = error.context_mark
        if start and start.line + 1 != line:
            context += f" that starts on line {start.line + 1}"
        message += f" ({context})"
    return line, message


def _short_tag(tag: str) -> str:
    """A tag as the admin wrote it: `!!set`, not `tag:yaml.org,2002:set`."""
    return "!!" + tag.removeprefix("tag:yaml.org,2002:") if tag.startswith("tag:yaml") else tag


def _node_kind(node: Node) -> str:
    return "a mapping" if isinstance(node, MappingNode) else "a list"


# --- pydantic's messages, rewritten for admins --------------------------------------------------

_EXPECTED = {
    "float_type": "a number",
    "int_type": "a whole number",
    "int_from_float": "a whole number",
    "bool_type": "true or false",
    "string_type": "text",
    "tuple_type": "a list",
    "list_type": "a list",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
}


def _rewrite(details: ErrorDetails) -> str:
    kind = details["type"]
    got = _describe(details["input"])
    context = details.get("ctx") or {}
    if kind in _EXPECTED:
        return f"expected {_EXPECTED[kind]}, got {got}"
    if kind == "literal_error":
        expected = str(context.get("expected", ""))
        several = " or " in expected
        return f"expected {'one of ' if several else ''}{expected}, got {got}"
    bounds = {
        "greater_than_equal": ("at least", "ge"),
        "greater_than": ("more than", "gt"),
        "less_than_equal": ("at most", "le"),
        "less_than": ("less than", "lt"),
    }
    if kind in bounds:
        words, name = bounds[kind]
        return f"must be {words} {_number(context.get(name))}, got {got}"
    if kind == "string_too_short":
        minimum = context.get("min_length", 1)
        return "must not be empty" if minimum == 1 else f"must be at least {minimum} characters"
    if kind == "string_too_long":
        return f"must be at most {context.get('max_length')} characters, got {got}"
    message = details["msg"]
    for prefix in ("Value error, ", "Assertion failed, "):
        message = message.removeprefix(prefix)
    return message[:1].lower() + message[1:]


def _describe(value: object) -> str:
    """A YAML value as the admin wrote it, short."""
    if value is None:
        return "nothing (an empty value)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        shown = value if len(value) <= 40 else value[:37] + "..."
        return f"'{shown}'"
    if isinstance(value, float):
        # 2.0 where a whole number is expected must not read as "got 2".
        return repr(value)
    if isinstance(value, int):
        return str(value)
    return _kind(value)


def _kind(value: object) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return _describe(value)


def _number(value: object) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _unknown_key_message(key: str, known: Sequence[str]) -> str:
    suggestion = _closest(key, known)
    if suggestion:
        return f"unknown key; did you mean '{suggestion}'?"
    if known:
        return f"unknown key; known keys here: {', '.join(known)}"
    return "unknown key"


def _closest(word: str, candidates: Sequence[str]) -> str | None:
    """The candidate the admin most likely meant: same spelling, a close typo, or a longer name."""
    normal = word.lower().replace("-", "_")
    for candidate in candidates:
        if candidate.lower() == normal:
            return candidate
    close = difflib.get_close_matches(normal, list(candidates), n=1, cutoff=0.7)
    if close:
        return close[0]
    # "tier" for "customer_tier": the key names one part of a longer known name.
    containing = [c for c in candidates if normal in c.lower().split("_")]
    return containing[0] if len(containing) == 1 else None


def _known_keys(loc: Sequence[str | int]) -> list[str]:
    """The keys the model at `loc` accepts (aliases as written in YAML)."""
    model = _model_at(loc)
    if model is None:
        return []
    return [field.alias or name for name, field in model.model_fields.items()]


def _model_at(loc: Sequence[str | int]) -> type[BaseModel] | None:
    current: Any = Rules
    for part in loc:
        current = _unwrap_optional(current)
        if isinstance(current, type) and issubclass(current, BaseModel) and isinstance(part, str):
            fields = {field.alias or name: field for name, field in current.model_fields.items()}
            if part not in fields:
                return None
            current = fields[part].annotation
            continue
        args = typing.get_args(current)
        origin = typing.get_origin(current)
        if origin is tuple and isinstance(part, int) and args:
            current = args[0]
        elif origin is dict and isinstance(part, str) and len(args) == 2:
            current = args[1]
        else:
            return None
    current = _unwrap_optional(current)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return current
    return None


def _unwrap_optional(annotation: Any) -> Any:
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        members = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        if len(members) == 1:
            return members[0]
    return annotation


def _render_path(path: Sequence[str | int]) -> str:
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        elif re.fullmatch(r"[A-Za-z0-9_-]+", part):
            text += f".{part}" if text else part
        else:
            text += f'["{part}"]'
    return text


# --- one pass over the whole file ----------------------------------------------------------------


class _CrossChecks:
    """Checks across sections, on the raw data so they run even when some models did not validate.

    Every check looks only at values of the right type and skips the rest: a wrong type has
    already been reported by the models, and must not cause a second, confusing message.
    """

    def __init__(self, loader: _Loader, data: dict[str, Any]) -> None:
        self.loader = loader
        self.data = data
        teams = data.get("teams")
        self.teams: list[str] | None = sorted(teams) if isinstance(teams, dict) else None
        levels = data.get("levels")
        self.levels: list[str] | None = None
        if isinstance(levels, list):
            self.levels = [
                level["name"]
                for level in levels
                if isinstance(level, dict) and isinstance(level.get("name"), str)
            ]

    def run(self) -> None:
        self.check_levels()
        self.check_recovery()
        self.check_teams()
        routes = self.data.get("routes")
        if isinstance(routes, dict):
            self.check_root_route(routes)
            self.check_route(routes, ("routes",))

    def check_levels(self) -> None:
        levels = self.data.get("levels")
        if not isinstance(levels, list):
            return
        if not levels:
            self.loader.problem(("levels",), "at least one level is needed")
            return
        names: dict[str, int] = {}
        previous: tuple[int, float] | None = None
        for index, level in enumerate(levels):
            if not isinstance(level, dict):
                continue
            name = level.get("name")
            if isinstance(name, str):
                if name in names:
                    message = f"level '{name}' is already defined by levels[{names[name]}]"
                    self.loader.problem(("levels", index, "name"), message)
                else:
                    names[name] = index
            score = level.get("min_score")
            if isinstance(score, int | float) and not isinstance(score, bool):
                if previous is not None and score <= previous[1]:
                    message = (
                        f"must be higher than levels[{previous[0]}].min_score "
                        f"({_number(previous[1])}), got {_number(score)}; "
                        "list levels from lowest to highest"
                    )
                    self.loader.problem(("levels", index, "min_score"), message)
                previous = (index, score)
        if all(isinstance(level, dict) and level.get("notify") is False for level in levels):
            message = "no level has notify: true, so no escalation would ever post a card"
            self.loader.problem(("levels",), message)

    def check_recovery(self) -> None:
        recovery = self.data.get("recovery")
        levels = self.data.get("levels")
        if not (isinstance(recovery, dict) and isinstance(levels, list)):
            return
        below = recovery.get("below_score")
        notifying = [
            level["min_score"]
            for level in levels
            if isinstance(level, dict)
            and level.get("notify") is not False
            and isinstance(level.get("min_score"), int | float)
        ]
        if isinstance(below, int | float) and not isinstance(below, bool) and notifying:
            lowest = min(notifying)
            if below > lowest:
                # Otherwise a conversation still at a notifying level could close as recovered.
                message = (
                    f"must not be above the lowest notifying level's min_score "
                    f"({_number(lowest)}), got {_number(below)}"
                )
                self.loader.problem(("recovery", "below_score"), message)

    def check_teams(self) -> None:
        teams = self.data.get("teams")
        if not isinstance(teams, dict):
            return
        if not teams:
            self.loader.problem(("teams",), "at least one team is needed")
        for name, team in teams.items():
            if not isinstance(team, dict):
                continue
            path: KeyPath = ("teams", name)
            if team.get("slack") is None and team.get("teams") is None:
                message = "the team has no slack or teams channel, so its cards cannot be posted"
                self.loader.problem(path, message)
            sla = team.get("sla")
            if isinstance(sla, dict):
                self.check_sla_steps(name, sla.get("steps"), (*path, "sla", "steps"))
                after_hours = sla.get("after_hours")
                if isinstance(after_hours, str):
                    if after_hours == name:
                        message = f"team '{name}' cannot be its own after-hours target"
                        self.loader.problem((*path, "sla", "after_hours"), message)
                    else:
                        self.check_team_name(after_hours, (*path, "sla", "after_hours"))
            digest = team.get("digest")
            if isinstance(digest, dict):
                self.check_digest(digest, (*path, "digest"))

    def check_sla_steps(self, team: str, steps: object, path: KeyPath) -> None:
        if not isinstance(steps, list):
            return
        previous: tuple[int, float] | None = None
        for index, step in enumerate(steps):
            if not isinstance(step, dict):
                continue
            after = step.get("after_minutes")
            if isinstance(after, int | float) and not isinstance(after, bool):
                if previous is not None and after <= previous[1]:
                    message = (
                        f"must be later than steps[{previous[0]}].after_minutes "
                        f"({_number(previous[1])}), got {_number(after)}; "
                        "list steps in the order they happen"
                    )
                    self.loader.problem((*path, index, "after_minutes"), message)
                previous = (index, after)
            if step.get("action") != "handoff":
                continue
            target = step.get("target")
            if target is None:
                message = "a handoff step needs a target: the team to hand off to"
                self.loader.problem((*path, index, "target"), message)
            elif isinstance(target, str):
                if target == team:
                    message = f"team '{team}' cannot hand off to itself"
                    self.loader.problem((*path, index, "target"), message)
                else:
                    self.check_team_name(target, (*path, index, "target"))

    def check_digest(self, digest: dict[str, Any], path: KeyPath) -> None:
        timezone = digest.get("timezone")
        if isinstance(timezone, str) and timezone not in _time_zones():
            message = f"'{timezone}' is not a known time zone"
            suggestion = difflib.get_close_matches(timezone, sorted(_time_zones()), n=1)
            if suggestion:
                message += f"; did you mean '{suggestion[0]}'?"
            else:
                message += "; use an IANA name such as 'Europe/Berlin' or 'UTC'"
            self.loader.problem((*path, "timezone"), message)
        cron = digest.get("cron")
        if isinstance(cron, str):
            error = cron_problem(cron)
            if error:
                self.loader.problem((*path, "cron"), error)

    def check_team_name(self, name: str, path: KeyPath) -> None:
        if self.teams is not None and name not in self.teams:
            defined = ", ".join(self.teams) or "none"
            self.loader.problem(path, f"team '{name}' is not defined; defined teams: {defined}")

    def check_root_route(self, root: dict[str, Any]) -> None:
        if root.get("match") is not None:
            message = (
                "the root route takes every conversation and cannot have a match; "
                "put the match on a route under routes.routes"
            )
            self.loader.problem(("routes", "match"), message)
        if root.get("continue") is True:
            self.loader.problem(
                ("routes", "continue"), "the root route has no siblings to continue to"
            )
        if root.get("team") is None:
            message = "the root route needs a team; routes without a team inherit it"
            self.loader.problem(("routes", "team"), message, line=self.loader.line_of(("routes",)))

    def check_route(self, route: dict[str, Any], path: KeyPath) -> None:
        team = route.get("team")
        if isinstance(team, str):
            self.check_team_name(team, (*path, "team"))
        match = route.get("match")
        if isinstance(match, dict):
            self.check_match(match, (*path, "match"))
        children = route.get("routes")
        if not isinstance(children, list):
            return
        catch_all: int | None = None
        for index, child in enumerate(children):
            if not isinstance(child, dict):
                continue
            child_path = (*path, "routes", index)
            if catch_all is not None:
                message = (
                    f"this route is never reached: {_render_path((*path, 'routes', catch_all))} "
                    "before it has no match and no continue: true, so it takes every conversation"
                )
                self.loader.problem(child_path, message)
            elif _matches_everything(child) and child.get("continue") is not True:
                catch_all = index
            self.check_route(child, child_path)

    def check_match(self, match: dict[str, Any], path: KeyPath) -> None:
        for key in ("customer_tier", "platform", "language"):
            if match.get(key) == []:
                message = "an empty list matches nothing; remove the key to match any value"
                self.loader.problem((*path, key), message)
        level = match.get("min_level")
        if isinstance(level, str) and self.levels is not None and level not in self.levels:
            defined = ", ".join(self.levels) or "none"
            message = f"level '{level}' is not defined; defined levels: {defined}"
            self.loader.problem((*path, "min_level"), message)


def _matches_everything(route: Mapping[str, Any]) -> bool:
    match = route.get("match")
    if match is None:
        return True
    # An empty metadata mapping asks for nothing, like an absent key.
    return isinstance(match, dict) and all(value in (None, {}) for value in match.values())


@functools.cache
def _time_zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


# --- cron ----------------------------------------------------------------------------------------

_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
# name, lowest, highest, names from the lowest value up; day of week 0 and 7 are both Sunday.
_CRON_FIELDS: tuple[tuple[str, int, int, tuple[str, ...]], ...] = (
    ("minute", 0, 59, ()),
    ("hour", 0, 23, ()),
    ("day of month", 1, 31, ()),
    ("month", 1, 12, _MONTHS),
    ("day of week", 0, 7, _DAYS),
)


def cron_problem(expression: str) -> str | None:
    """What is wrong with a standard 5-field cron expression, or None when it is valid."""
    try:
        _parse_cron(expression)
    except ValueError as error:
        return str(error)
    return None


def cron_fields(expression: str) -> dict[str, str]:
    """APScheduler `CronTrigger(**fields)` arguments meaning what the standard cron means.

    APScheduler 3 numbers weekdays from Monday = 0, so `CronTrigger.from_crontab("0 9 * * 1-5")`
    fires Tuesday to Saturday; here weekdays are spelled out by name. Raises ValueError with the
    `cron_problem` message for an invalid expression.
    """
    fields = _parse_cron(expression)
    texts = expression.split()
    names = ("minute", "hour", "day", "month", "day_of_week")
    result: dict[str, str] = {}
    for name, text, values in zip(names, texts, fields, strict=True):
        if text == "*":
            result[name] = "*"
        elif name == "day_of_week":
            days = sorted({value % 7 for value in values}, key=lambda day: (day + 6) % 7)
            result[name] = ",".join(_DAYS[day] for day in days)
        else:
            result[name] = ",".join(str(value) for value in sorted(values))
    return result


def _parse_cron(expression: str) -> list[set[int]]:
    texts = expression.split()
    if len(texts) != 5:
        raise ValueError(
            f"expected 5 cron fields (minute hour day-of-month month day-of-week), "
            f"got {len(texts)} in '{expression}'"
        )
    fields: list[set[int]] = []
    for text, (name, low, high, names) in zip(texts, _CRON_FIELDS, strict=True):
        values: set[int] = set()
        for item in text.split(","):
            try:
                values |= _cron_item(item, low, high, names)
            except ValueError as error:
                raise ValueError(f"{name} field '{text}': {error}") from None
        fields.append(values)
    if texts[2] != "*" and texts[4] != "*":
        # Classic cron fires when EITHER day field matches, schedulers like APScheduler only when
        # both do; refusing the combination keeps a digest from silently firing on other days.
        raise ValueError(
            f"restrict the day of month or the day of week, not both, in '{expression}'"
        )
    return fields


def _cron_item(item: str, low: int, high: int, names: tuple[str, ...]) -> set[int]:
    base, slash, step_text = item.partition("/")
    if slash and not (step_text.isdigit() and int(step_text) > 0):
        raise ValueError(f"step '{step_text}' must be a whole number above 0")
    step = int(step_text) if slash else 1
    if base == "*":
        return set(range(low, high + 1, step))
    start_text, dash, end_text = base.partition("-")
    if slash and not dash:
        raise ValueError(f"a step needs '*' or a range before it, got '{base}'")
    start = _cron_value(start_text, low, high, names)
    end = _cron_value(end_text, low, high, names) if dash else start
    if start > end:
        raise ValueError(f"range '{base}' goes backwards")
    return set(range(start, end + 1, step))


def _cron_value(text: str, low: int, high: int, names: tuple[str, ...]) -> int:
    if text.lower() in names:
        return names.index(text.lower()) + low
    if not text.isdigit():
        raise ValueError(f"'{text}' is not a number" + (" or a name" if names else ""))
    if not low <= int(text) <= high:
        raise ValueError(f"{text} is out of range {low}-{high}")
    return int(text)
