"""Building blocks shared by the converters: generic-format events, labels and JSONL files."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

# None of the datasets records when a turn was said; a steady pace keeps duration-based signals
# quiet on short dialogues, as they would be on a live chat answered promptly.
DEFAULT_START = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
SECONDS_BETWEEN_TURNS = 20

Record = dict[str, Any]
Speaker = Literal["customer", "bot"]


def event_id(index: int) -> str:
    """The id of the `index`-th turn of a converted dialogue ("t00", "t01", ...)."""
    return f"t{index:02d}"


def timestamp(index: int, start: datetime = DEFAULT_START) -> str:
    """A synthetic ISO-8601 UTC timestamp for the `index`-th turn, 20 seconds apart."""
    moment = start + timedelta(seconds=SECONDS_BETWEEN_TURNS * index)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def message(index: int, role: Speaker, text: str) -> Record:
    """One generic-format message event for the `index`-th turn."""
    return {
        "id": event_id(index),
        "type": "message",
        "role": role,
        "text": text,
        "timestamp": timestamp(index),
    }


def label(needs_human: bool, source: str, needs_human_from: str | None = None) -> Record:
    """The evaluation label of one conversation; `needs_human_from` only on positives."""
    if needs_human_from is not None and not needs_human:
        raise ValueError("needs_human_from is only meaningful when needs_human is true")
    result: Record = {"needs_human": needs_human}
    if needs_human_from is not None:
        result["needs_human_from"] = needs_human_from
    result["source"] = source
    return result


def conversation(
    conversation_id: str,
    events: list[Record],
    conversation_label: Record,
    metadata: dict[str, str],
) -> Record:
    """One generic-format conversation line with its label."""
    return {
        "conversation_id": conversation_id,
        "platform": "generic",
        "metadata": metadata,
        "events": events,
        "label": conversation_label,
    }


def read_jsonl(path: Path) -> Iterator[Record]:
    """The JSON objects of a JSON Lines file, skipping blank lines."""
    with path.open(encoding="utf-8") as lines:
        for line in lines:
            if line.strip():
                yield json.loads(line)


def write_jsonl(records: Iterable[Record], path: Path) -> int:
    """Write one JSON object per line (UTF-8, non-ASCII kept readable); return the count."""
    count = 0
    with path.open("w", encoding="utf-8") as out:
        for record in records:
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
            count += 1
    return count


def read_json_array(path: Path) -> list[dict[str, Any]]:
    """The dialogues of a raw file that is one JSON array."""
    dialogues: list[dict[str, Any]] = json.loads(path.read_text(encoding="utf-8"))
    return dialogues


def convert_command(
    argv: list[str],
    *,
    usage: str,
    read: Callable[[Path], Iterable[dict[str, Any]]],
    convert: Callable[[dict[str, Any]], Record],
) -> int:
    """A converter's command line: RAW to OUT.jsonl, printing how many conversations and positives.

    Exit status 2 with `usage` on stderr unless given exactly the two paths.
    """
    if len(argv) != 2:
        print(f"usage: {usage}", file=sys.stderr)
        return 2
    records = [convert(dialogue) for dialogue in read(Path(argv[0]))]
    write_jsonl(records, Path(argv[1]))
    positives = sum(1 for record in records if record["label"]["needs_human"])
    print(f"{len(records)} conversations, {positives} need a human -> {argv[1]}")
    return 0
