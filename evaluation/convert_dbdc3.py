"""Dialogue Breakdown Detection Challenge 3 (English) -> labelled generic conversations.

Label: a conversation needs a human when at least two system turns have a breakdown (X) that
most annotators mark (more than half of them); it needs one from the second such turn. One odd
reply is something a customer shrugs off; a second one that most people call a breakdown is the
point where a support bot has lost the customer.

Usage: python -m evaluation.convert_dbdc3 RAW.jsonl OUT.jsonl
RAW is either the compact extract (one dialogue per line with `breakdown_counts`) or upstream
`*.log.json` files (one dialogue each, with per-annotator `annotations`).
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from evaluation.generic_format import (
    Record,
    Speaker,
    conversation,
    convert_command,
    event_id,
    label,
    message,
)

BREAKDOWNS_NEEDED = 2
ROLES: dict[str, Speaker] = {"S": "bot", "U": "customer"}


def breakdown_counts(turn: dict[str, Any]) -> Counter[str]:
    """How many annotators marked a turn O, T and X (compact counts or upstream annotations)."""
    if "breakdown_counts" in turn:
        return Counter({mark: int(count) for mark, count in turn["breakdown_counts"].items()})
    return Counter(annotation["breakdown"] for annotation in turn.get("annotations", []))


def is_agreed_breakdown(turn: dict[str, Any]) -> bool:
    """True when more than half of the turn's annotators marked it a breakdown (X)."""
    counts = breakdown_counts(turn)
    total = sum(counts.values())
    return total > 0 and counts["X"] * 2 > total


def convert_dialogue(dialogue: dict[str, Any]) -> Record:
    """One DBDC3 dialogue as a generic conversation with its label."""
    dialogue_id = str(dialogue["dialogue-id"])
    events = []
    breakdowns: list[int] = []
    for index, turn in enumerate(dialogue["turns"]):
        role = ROLES[turn["speaker"]]
        events.append(message(index, role, turn["utterance"]))
        if role == "bot" and is_agreed_breakdown(turn):
            breakdowns.append(index)
    shown = ", ".join(event_id(index) for index in breakdowns) or "none"
    source = f"dbdc3: system turns most annotators mark as breakdown (X): {shown}"
    if len(breakdowns) >= BREAKDOWNS_NEEDED:
        verdict = label(True, source, event_id(breakdowns[BREAKDOWNS_NEEDED - 1]))
    else:
        verdict = label(False, source)
    metadata = {"dataset": "dbdc3-en"}
    if "source_file" in dialogue:
        metadata["source_file"] = str(dialogue["source_file"])
    return conversation(f"dbdc3-{dialogue_id}", events, verdict, metadata)


def read_dialogues(raw_path: Path) -> Iterator[dict[str, Any]]:
    """Dialogues from a compact JSONL extract or a single upstream `.log.json` file."""
    text = raw_path.read_text(encoding="utf-8")
    if raw_path.suffix == ".jsonl":
        for line in text.splitlines():
            if line.strip():
                yield json.loads(line)
    else:
        yield json.loads(text)


def main(argv: list[str]) -> int:
    """Convert RAW to OUT.jsonl; print how many conversations and positives were written."""
    return convert_command(
        argv,
        usage="python -m evaluation.convert_dbdc3 RAW.jsonl OUT.jsonl",
        read=read_dialogues,
        convert=convert_dialogue,
    )


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
