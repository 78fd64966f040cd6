"""`escalations eval`: how well the rules find the conversations that need a human.

Reads labelled conversations (the generic format plus a `label` per line), runs each through the
engine offline and scores the escalation decision against the label: precision, recall, F1 and
how early it escalated relative to the labelled point. Two baselines are scored in the same run,
so a change to the rules can be judged against something simple: VADER alone (any customer
message below a compound threshold) and explicit requests for a human alone. An ablation shows
what each signal adds: F1 with that one signal switched off.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

from bot.replay import ReplayInputError, read_conversations, run_conversation
from engine import asks_for_human
from engine.events import InboundBatch, Role
from engine.rules import Rules
from engine.rules_loader import RulesError, load_rules_file

DEFAULT_VADER_THRESHOLD = -0.5
OVERALL = "overall"
PROXY_NOTE = (
    "The public datasets are proxies: none is a support transcript with a recorded human "
    "hand-off (a breakdown most annotators mark, a scenario where the assistant fails, a "
    "system that reports a failure)."
)


class LabelError(ValueError):
    """A line's `label` is missing or malformed; the message names the line."""


@dataclass(frozen=True, slots=True)
class LabelledConversation:
    """One conversation and what a person decided about it."""

    batch: InboundBatch
    needs_human: bool
    # The event from which a human was needed; None when unknown or not needed.
    needs_human_from: str | None = None
    dataset: str = "unnamed"

    def event_index(self, event_id: str) -> int:
        """Position of `event_id` among the conversation's events."""
        for index, event in enumerate(self.batch.events):
            if event.event_id == event_id:
                return index
        raise KeyError(event_id)


# A detector says at which event (by position) it would have escalated, or None.
Detector = Callable[[LabelledConversation], int | None]


@dataclass(frozen=True, slots=True)
class Earliness:
    """Where escalations fell relative to the labelled point, in events (negative = early)."""

    offsets: tuple[int, ...] = ()

    @property
    def early(self) -> int:
        """Escalations before the labelled point."""
        return sum(1 for offset in self.offsets if offset < 0)

    @property
    def on_time(self) -> int:
        """Escalations at the labelled event itself."""
        return sum(1 for offset in self.offsets if offset == 0)

    @property
    def late(self) -> int:
        """Escalations after the labelled point."""
        return sum(1 for offset in self.offsets if offset > 0)

    @property
    def median(self) -> float | None:
        """Median offset in events; None when nothing was measured."""
        return float(statistics.median(self.offsets)) if self.offsets else None

    @property
    def mean(self) -> float | None:
        """Mean offset in events; None when nothing was measured."""
        return statistics.fmean(self.offsets) if self.offsets else None

    def to_json(self) -> dict[str, Any]:
        """The machine-readable form."""
        return {
            "measured": len(self.offsets),
            "early": self.early,
            "on_time": self.on_time,
            "late": self.late,
            "median_offset": self.median,
            "mean_offset": None if self.mean is None else round(self.mean, 3),
        }


@dataclass(frozen=True, slots=True)
class Scores:
    """A detector's confusion counts on a set of conversations, and its earliness."""

    true_positives: int
    false_positives: int
    false_negatives: int
    true_negatives: int
    earliness: Earliness = field(default_factory=Earliness)
    false_positive_ids: tuple[str, ...] = ()
    false_negative_ids: tuple[str, ...] = ()

    @property
    def conversations(self) -> int:
        """How many conversations were scored."""
        return (
            self.true_positives + self.false_positives + self.false_negatives + self.true_negatives
        )

    @property
    def precision(self) -> float:
        """Share of escalations that were needed (0 when nothing escalated)."""
        flagged = self.true_positives + self.false_positives
        return self.true_positives / flagged if flagged else 0.0

    @property
    def recall(self) -> float:
        """Share of conversations needing a human that escalated (0 when none needed one)."""
        needed = self.true_positives + self.false_negatives
        return self.true_positives / needed if needed else 0.0

    @property
    def f1(self) -> float:
        """Harmonic mean of precision and recall (0 when both are 0)."""
        total = self.precision + self.recall
        return 2 * self.precision * self.recall / total if total else 0.0

    def to_json(self) -> dict[str, Any]:
        """The machine-readable form, rounded to four decimals."""
        return {
            "precision": round(self.precision, 4),
            "recall": round(self.recall, 4),
            "f1": round(self.f1, 4),
            "true_positives": self.true_positives,
            "false_positives": self.false_positives,
            "false_negatives": self.false_negatives,
            "true_negatives": self.true_negatives,
            "earliness": self.earliness.to_json(),
            "false_positive_ids": list(self.false_positive_ids),
            "false_negative_ids": list(self.false_negative_ids),
        }


def score(
    conversations: Sequence[LabelledConversation], escalated_at: Sequence[int | None]
) -> Scores:
    """Score escalation points (event positions, None = never) against the labels."""
    if len(conversations) != len(escalated_at):
        raise ValueError("one escalation point per conversation is needed")
    tp = fp = fn = tn = 0
    offsets: list[int] = []
    false_positive_ids: list[str] = []
    false_negative_ids: list[str] = []
    for conversation, at in zip(conversations, escalated_at, strict=True):
        conversation_id = conversation.batch.conversation_id
        if conversation.needs_human and at is not None:
            tp += 1
            if conversation.needs_human_from is not None:
                offsets.append(at - conversation.event_index(conversation.needs_human_from))
        elif conversation.needs_human:
            fn += 1
            false_negative_ids.append(conversation_id)
        elif at is not None:
            fp += 1
            false_positive_ids.append(conversation_id)
        else:
            tn += 1
    return Scores(
        tp,
        fp,
        fn,
        tn,
        Earliness(tuple(offsets)),
        tuple(false_positive_ids),
        tuple(false_negative_ids),
    )


# --- detectors -----------------------------------------------------------------------------------


def engine_detector(rules: Rules) -> Detector:
    """The engine with `rules`: the position of the first event whose decision opened a card."""

    def detect(conversation: LabelledConversation) -> int | None:
        result = run_conversation(conversation.batch, rules)
        if result.escalated_at_event is None:
            return None
        return conversation.event_index(result.escalated_at_event)

    return detect


def _first_customer_message(
    conversation: LabelledConversation, matches: Callable[[str], bool]
) -> int | None:
    for index, event in enumerate(conversation.batch.events):
        if event.role is Role.CUSTOMER and event.text and matches(event.text):
            return index
    return None


def vader_detector(threshold: float = DEFAULT_VADER_THRESHOLD) -> Detector:
    """Baseline: escalate at the first customer message whose plain VADER compound < threshold."""
    # Plain VADER on purpose, without the engine's corrections: the baseline is what a team
    # would get from the lexicon alone.
    analyzer = SentimentIntensityAnalyzer()

    def negative(text: str) -> bool:
        return float(analyzer.polarity_scores(text)["compound"]) < threshold

    def detect(conversation: LabelledConversation) -> int | None:
        return _first_customer_message(conversation, negative)

    return detect


def human_request_detector() -> Detector:
    """Baseline: escalate at the first customer message that asks for a person."""

    def detect(conversation: LabelledConversation) -> int | None:
        return _first_customer_message(conversation, asks_for_human)

    return detect


def without_signal(rules: Rules, signal: str) -> Rules:
    """A copy of `rules` with one signal switched off (the rules models are frozen)."""
    signals = rules.signals
    switched_off = getattr(signals, signal).model_copy(update={"enabled": False})
    return rules.model_copy(update={"signals": signals.model_copy(update={signal: switched_off})})


def enabled_signals(rules: Rules) -> list[str]:
    """Names of the signals `rules` switches on, in the order the rules model declares them."""
    return [
        name for name in type(rules.signals).model_fields if getattr(rules.signals, name).enabled
    ]


# --- the report ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DatasetReport:
    """All figures for one data file (or all of them pooled)."""

    name: str
    conversations: int
    need_human: int
    engine: Scores
    baselines: dict[str, Scores]
    # F1 with one signal switched off, by signal name; empty when ablation was skipped.
    ablation: dict[str, float]

    def to_json(self) -> dict[str, Any]:
        """The machine-readable form."""
        return {
            "dataset": self.name,
            "conversations": self.conversations,
            "need_human": self.need_human,
            "engine": self.engine.to_json(),
            "baselines": {name: scores.to_json() for name, scores in self.baselines.items()},
            "ablation": {
                signal: {"f1": round(f1, 4), "f1_change": round(f1 - self.engine.f1, 4)}
                for signal, f1 in self.ablation.items()
            },
        }


@dataclass(frozen=True, slots=True)
class EvalReport:
    """Figures per data file, then pooled over every conversation (`overall`)."""

    datasets: tuple[DatasetReport, ...]
    vader_threshold: float

    def to_json(self) -> dict[str, Any]:
        """The machine-readable form printed by `--format json`."""
        return {
            "note": PROXY_NOTE,
            "vader_threshold": self.vader_threshold,
            "datasets": [dataset.to_json() for dataset in self.datasets],
        }


BASELINE_NAMES = ("vader", "human_request")


def evaluate(
    conversations: Sequence[LabelledConversation],
    rules: Rules,
    *,
    vader_threshold: float = DEFAULT_VADER_THRESHOLD,
    ablation: bool = True,
) -> EvalReport:
    """Score the engine, both baselines and (optionally) each signal's ablation, per dataset."""
    detectors: dict[str, Detector] = {
        "engine": engine_detector(rules),
        "vader": vader_detector(vader_threshold),
        "human_request": human_request_detector(),
    }
    if ablation:
        for signal in enabled_signals(rules):
            detectors[f"without:{signal}"] = engine_detector(without_signal(rules, signal))
    # Each detector runs once per conversation; the per-dataset figures are cut from these.
    points = {name: [detect(c) for c in conversations] for name, detect in detectors.items()}
    names = list(dict.fromkeys(c.dataset for c in conversations))
    groups: list[tuple[str, list[int]]] = [
        (name, [i for i, c in enumerate(conversations) if c.dataset == name]) for name in names
    ]
    if len(names) != 1:
        groups.append((OVERALL, list(range(len(conversations)))))
    reports = []
    for name, indexes in groups:
        members = [conversations[i] for i in indexes]
        by_detector = {
            detector: score(members, [at[i] for i in indexes]) for detector, at in points.items()
        }
        reports.append(
            DatasetReport(
                name=name,
                conversations=len(members),
                need_human=sum(1 for c in members if c.needs_human),
                engine=by_detector["engine"],
                baselines={baseline: by_detector[baseline] for baseline in BASELINE_NAMES},
                ablation={
                    detector.removeprefix("without:"): scores.f1
                    for detector, scores in by_detector.items()
                    if detector.startswith("without:")
                },
            )
        )
    return EvalReport(tuple(reports), vader_threshold)


# --- reading labelled files ----------------------------------------------------------------------


def parse_label(raw: dict[str, Any], batch: InboundBatch, where: str) -> tuple[bool, str | None]:
    """(needs_human, needs_human_from) from a line's `label`; LabelError names what is wrong."""
    label = raw.get("label")
    if not isinstance(label, dict):
        raise LabelError(f'{where}: label: missing; expected {{"needs_human": true|false}}')
    needs_human = label.get("needs_human")
    if not isinstance(needs_human, bool):
        raise LabelError(f"{where}: label.needs_human: expected true or false")
    needs_human_from = label.get("needs_human_from")
    if needs_human_from is None:
        return needs_human, None
    if not isinstance(needs_human_from, str):
        raise LabelError(f"{where}: label.needs_human_from: expected an event id")
    if not needs_human:
        raise LabelError(f"{where}: label.needs_human_from: given but needs_human is false")
    if needs_human_from not in {event.event_id for event in batch.events}:
        raise LabelError(f"{where}: label.needs_human_from: no event with id {needs_human_from!r}")
    return needs_human, needs_human_from


def read_labelled(path: Path) -> list[LabelledConversation]:
    """Every labelled conversation of one JSONL file; the dataset is named after the file."""
    conversations = []
    for batch, raw in read_conversations(path):
        needs_human, needs_human_from = parse_label(raw, batch, f"{path}: {batch.conversation_id}")
        conversations.append(
            LabelledConversation(batch, needs_human, needs_human_from, dataset=path.stem)
        )
    return conversations


def data_files(paths: Iterable[Path]) -> list[Path]:
    """The given files, with each directory replaced by the `*.jsonl` files in it, sorted."""
    files: list[Path] = []
    for path in paths:
        files.extend(sorted(path.glob("*.jsonl")) if path.is_dir() else [path])
    return files


# --- text output ---------------------------------------------------------------------------------


def _offset(value: float | None) -> str:
    return "-" if value is None else f"{value:+.1f}"


# A terminal table stays readable with this many ids; `--format json` lists them all.
MAX_IDS_SHOWN = 12


def _ids(conversation_ids: Sequence[str]) -> str:
    shown = ", ".join(conversation_ids[:MAX_IDS_SHOWN]) or "-"
    hidden = len(conversation_ids) - MAX_IDS_SHOWN
    return f"{shown} (+{hidden} more)" if hidden > 0 else shown


def _row(label: str, scores: Scores) -> str:
    earliness = scores.earliness
    return (
        f"  {label:<26} {scores.precision:5.2f} {scores.recall:5.2f} {scores.f1:5.2f} "
        f"{scores.true_positives:4d} {scores.false_positives:4d} {scores.false_negatives:4d} "
        f"{scores.true_negatives:4d}   {earliness.early:3d} {earliness.on_time:3d} "
        f"{earliness.late:3d}  {_offset(earliness.median):>6}"
    )


def render_text(report: EvalReport, *, list_errors: bool = False) -> str:
    """The readable report: one table per data file, then overall."""
    baseline_labels = {
        "vader": f"VADER alone (< {report.vader_threshold:+.2f})",
        "human_request": "human request alone",
    }
    lines = [PROXY_NOTE, ""]
    for dataset in report.datasets:
        lines.append(
            f"{dataset.name}: {dataset.conversations} conversations, "
            f"{dataset.need_human} need a human"
        )
        lines.append(
            f"  {'detector':<26} {'P':>5} {'R':>5} {'F1':>5} {'TP':>4} {'FP':>4} {'FN':>4} "
            f"{'TN':>4}   {'early':>5} {'on':>3} {'late':>4} {'median':>6}"
        )
        lines.append(_row("engine (rules)", dataset.engine))
        for name, scores in dataset.baselines.items():
            lines.append(_row(baseline_labels.get(name, name), scores))
        if dataset.ablation:
            lines.append("  F1 with one signal off (change from all signals on):")
            for signal, f1 in dataset.ablation.items():
                lines.append(f"    {signal:<24} {f1:5.2f} ({f1 - dataset.engine.f1:+.2f})")
        if list_errors:
            lines.append(f"  false positives: {_ids(dataset.engine.false_positive_ids)}")
            lines.append(f"  false negatives: {_ids(dataset.engine.false_negative_ids)}")
        lines.append("")
    lines.append(
        "early/on/late: true positives with a labelled point, by where the engine escalated; "
        "median: events after the labelled point (negative = early)."
    )
    return "\n".join(lines) + "\n"


# --- the command ---------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="escalations eval",
        description="Score the escalation decision on labelled conversations (generic JSONL).",
    )
    parser.add_argument("paths", nargs="+", type=Path, help="JSONL files or directories of them")
    parser.add_argument("--rules", type=Path, default=Path("rules.yaml"), help="rules file")
    parser.add_argument("--format", choices=("text", "json"), default="text", dest="fmt")
    parser.add_argument("--no-ablation", action="store_true", help="skip the per-signal runs")
    parser.add_argument(
        "--vader-threshold",
        type=float,
        default=DEFAULT_VADER_THRESHOLD,
        help="compound score below which the VADER baseline escalates (default -0.5)",
    )
    parser.add_argument(
        "--list-errors", action="store_true", help="name the engine's false positives/negatives"
    )
    return parser


def main(argv: list[str], out: IO[str] | None = None, err: IO[str] | None = None) -> int:
    """Run `escalations eval` with the arguments after `eval`; return the exit code."""
    out = out or sys.stdout
    err = err or sys.stderr
    args = _parser().parse_args(argv)
    try:
        rules = load_rules_file(args.rules)
    except (RulesError, OSError) as error:
        err.write(f"error: {error}\n")
        return 2
    conversations: list[LabelledConversation] = []
    try:
        for path in data_files(args.paths):
            conversations.extend(read_labelled(path))
    except (ReplayInputError, LabelError, OSError) as error:
        err.write(f"error: {error}\n")
        return 2
    if not conversations:
        err.write("error: no labelled conversations found\n")
        return 2
    report = evaluate(
        conversations, rules, vader_threshold=args.vader_threshold, ablation=not args.no_ablation
    )
    if args.fmt == "json":
        out.write(json.dumps(report.to_json(), ensure_ascii=False, indent=2) + "\n")
    else:
        out.write(render_text(report, list_errors=args.list_errors))
    return 0
