"""Offline replay: recorded conversations through the engine, no server and no database."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from connectors.base import BadPayload
from connectors.generic import parse_generic_object
from engine import ConversationState, assess
from engine.assessment import Assessment, Decision
from engine.events import InboundBatch
from engine.rules import Rules


@dataclass(frozen=True, slots=True)
class ConversationResult:
    """What the engine decided over one whole conversation."""

    conversation_id: str
    assessments: tuple[Assessment, ...]
    escalated_at_event: str | None  # the event whose assessment opened an escalation

    @property
    def escalated(self) -> bool:
        """True when a card would have been posted."""
        return self.escalated_at_event is not None

    @property
    def peak(self) -> Assessment | None:
        """The assessment with the highest score (the first of equals)."""
        best: Assessment | None = None
        for assessment in self.assessments:
            if best is None or assessment.score > best.score:
                best = assessment
        return best

    @property
    def decisive(self) -> Assessment | None:
        """The assessment that escalated (or upgraded last), else the peak."""
        chosen: Assessment | None = None
        for assessment in self.assessments:
            if assessment.decision in (Decision.OPEN, Decision.UPGRADE):
                chosen = assessment
        return chosen or self.peak

    def to_json(self) -> dict[str, Any]:
        """The machine-readable result line of `replay --format json`."""
        decisive = self.decisive
        return {
            "conversation_id": self.conversation_id,
            "escalated": self.escalated,
            "level": decisive.level if decisive else None,
            "score": round(decisive.score, 2) if decisive else 0.0,
            "team": decisive.team if decisive else None,
            "reasons": [reason.text for reason in decisive.reasons] if decisive else [],
            "escalated_at_event": self.escalated_at_event,
            "events": len(self.assessments),
        }


def run_conversation(batch: InboundBatch, rules: Rules) -> ConversationResult:
    """Run one conversation's events, in the order given, through a fresh engine state."""
    state = ConversationState.new()
    assessments: list[Assessment] = []
    escalated_at: str | None = None
    for event in batch.events:
        state, assessment = assess(state, event, rules, batch.meta)
        assessments.append(assessment)
        if assessment.decision is Decision.OPEN and escalated_at is None:
            escalated_at = event.event_id
    return ConversationResult(batch.conversation_id, tuple(assessments), escalated_at)


class ReplayInputError(ValueError):
    """A replay file line that is not a conversation; the message names the line."""


def read_conversations(
    path: Path, progress: Callable[[int], None] | None = None
) -> Iterator[tuple[InboundBatch, dict[str, Any]]]:
    """Yield (conversation, raw object) per non-empty line of a JSONL file.

    `progress`, when given, is told how many bytes have been read after each line.
    """
    done = 0
    with path.open("rb") as handle:
        for number, raw_line in enumerate(handle, start=1):
            done += len(raw_line)
            if progress is not None:
                progress(done)
            where = f"{path}:{number}"
            try:
                line = raw_line.decode("utf-8")
            except UnicodeDecodeError as error:
                raise ReplayInputError(f"{where}: not UTF-8 text ({error.reason})") from None
            if not line.strip():
                continue
            try:
                raw = json.loads(line)
            except json.JSONDecodeError as error:
                raise ReplayInputError(f"{where}: not valid JSON: {error.msg}") from None
            try:
                batch = parse_generic_object(raw, where=where)
            except BadPayload as error:
                raise ReplayInputError(str(error)) from None
            yield batch, raw


def _describe(result: ConversationResult) -> str:
    decisive = result.decisive
    if decisive is None:
        return f"{result.conversation_id}: no events"
    if not result.escalated:
        level = decisive.level or "none"
        return f"{result.conversation_id}: not escalated (peak {decisive.score:.0f}, level {level})"
    lines = [
        f"{result.conversation_id}: ESCALATED at event {result.escalated_at_event} -> "
        f"level {decisive.level}, score {decisive.score:.0f}, team {decisive.team or '-'}"
    ]
    lines.extend(f"    - {reason.text}" for reason in decisive.reasons)
    return "\n".join(lines)


def _explain(batch: InboundBatch, result: ConversationResult, out: IO[str]) -> None:
    previous: dict[str, float] = {}
    for event, assessment in zip(batch.events, result.assessments, strict=True):
        now = {reason.signal: reason.points for reason in assessment.reasons}
        moved = []
        for signal in sorted(set(now) | set(previous)):
            delta = now.get(signal, 0.0) - previous.get(signal, 0.0)
            if abs(delta) >= 0.05:
                moved.append(f"{signal} {delta:+.0f}")
        who = event.role.value if event.role else event.type.value
        text = (event.text or "").replace("\n", " ")
        if len(text) > 60:
            text = text[:59] + "…"
        marker = "" if assessment.decision is Decision.NONE else f"  <- {assessment.decision.value}"
        out.write(
            f"  {event.event_id:>10} {who:<8} score {assessment.score:5.1f} "
            f"{assessment.level or '-':<9} {', '.join(moved) or '':<30} {text}{marker}\n"
        )
        previous = now


class _Progress:
    """A one-line progress bar on a terminal; silent when piped."""

    def __init__(self, total_bytes: int, stream: IO[str]) -> None:
        self.total = max(1, total_bytes)
        self.stream = stream
        self.enabled = stream.isatty()
        self.last_percent = -1

    def update(self, done_bytes: int, conversations: int) -> None:
        if not self.enabled:
            return
        percent = min(100, done_bytes * 100 // self.total)
        if percent != self.last_percent:
            self.last_percent = percent
            bar = "#" * (percent // 4) + "." * (25 - percent // 4)
            self.stream.write(f"\r[{bar}] {percent:3d}%  {conversations} conversations")
            self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self.stream.write("\n")


def replay(
    path: Path,
    rules: Rules,
    *,
    explain: bool = False,
    fmt: str = "text",
    out: IO[str] | None = None,
    err: IO[str] | None = None,
) -> int:
    """Replay a JSONL file and print a result per conversation; return the exit code."""
    out = out or sys.stdout
    err = err or sys.stderr
    progress = _Progress(path.stat().st_size, err)
    escalated = total = 0
    done_bytes = 0

    def read(position: int) -> None:
        nonlocal done_bytes
        done_bytes = position

    try:
        for batch, _raw in read_conversations(path, read):
            result = run_conversation(batch, rules)
            total += 1
            escalated += result.escalated
            if fmt == "json":
                out.write(json.dumps(result.to_json(), ensure_ascii=False) + "\n")
            else:
                out.write(_describe(result) + "\n")
                if explain:
                    _explain(batch, result, out)
            progress.update(done_bytes, total)
    except ReplayInputError as error:
        progress.close()
        err.write(f"error: {error}\n")
        return 2
    progress.close()
    if fmt != "json":
        out.write(f"{total} conversations, {escalated} escalated\n")
    return 0
