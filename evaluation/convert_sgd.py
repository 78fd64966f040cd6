"""Schema-Guided Dialogue (DSTC8), dialogues with a NOTIFY_FAILURE act -> labelled conversations.

Label: every dialogue here has a system turn that reports a failure (NOTIFY_FAILURE: the booking
or purchase did not go through). The conversation needs a human when the bot never recovers from
it, from the first failure it does not recover from. The bot recovers when, after a failure, a
transaction succeeds (NOTIFY_SUCCESS) or the user accepts an alternative the bot offered (SELECT).
Dialogues where the bot recovers are the negatives: a failure the bot repairs itself is exactly
what should not page a person.

Usage: python -m evaluation.convert_sgd RAW.json OUT.jsonl
"""

from __future__ import annotations

import sys
from typing import Any

from evaluation.generic_format import (
    Record,
    Speaker,
    conversation,
    convert_command,
    event_id,
    label,
    message,
    read_json_array,
)

ROLES: dict[str, Speaker] = {"USER": "customer", "SYSTEM": "bot"}
RECOVERY_ACTS = frozenset({"NOTIFY_SUCCESS", "SELECT"})


def acts(turn: dict[str, Any]) -> set[str]:
    """The dialogue acts of one turn, over all its frames."""
    return {action["act"] for frame in turn["frames"] for action in frame["actions"]}


def unrecovered_failure(turns: list[dict[str, Any]]) -> int | None:
    """Index of the first failure turn with no recovery after it, or None when it recovers."""
    first_unrecovered: int | None = None
    for index, turn in enumerate(turns):
        turn_acts = acts(turn)
        if "NOTIFY_FAILURE" in turn_acts and first_unrecovered is None:
            first_unrecovered = index
        elif turn_acts & RECOVERY_ACTS:
            first_unrecovered = None
    return first_unrecovered


def convert_dialogue(dialogue: dict[str, Any]) -> Record:
    """One SGD dialogue as a generic conversation with its label."""
    turns = dialogue["turns"]
    events = [message(i, ROLES[turn["speaker"]], turn["utterance"]) for i, turn in enumerate(turns)]
    failures = [event_id(i) for i, turn in enumerate(turns) if "NOTIFY_FAILURE" in acts(turn)]
    failing = unrecovered_failure(turns)
    if failing is None:
        source = f"sgd: NOTIFY_FAILURE at {', '.join(failures)}, then the bot recovers"
        verdict = label(False, source)
    else:
        source = f"sgd: NOTIFY_FAILURE at {', '.join(failures)}, no recovery"
        verdict = label(True, source, event_id(failing))
    metadata = {"dataset": "sgd-notify-failure", "services": ",".join(dialogue["services"])}
    return conversation(f"sgd-{dialogue['dialogue_id']}", events, verdict, metadata)


def main(argv: list[str]) -> int:
    """Convert RAW to OUT.jsonl; print how many conversations and positives were written."""
    return convert_command(
        argv,
        usage="python -m evaluation.convert_sgd RAW.json OUT.jsonl",
        read=read_json_array,
        convert=convert_dialogue,
    )


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
