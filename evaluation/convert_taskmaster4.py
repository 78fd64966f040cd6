"""Taskmaster-4 coffee ordering (TM-4-2024) -> labelled generic conversations.

Label, from the scenario each crowd worker was given (there are no per-turn labels): the
conversation needs a human when the scenario makes the assistant fail the order, that is the
"no results" and "wrong results" templates, from the assistant's first reply (the one that
reports the failure). Every other scenario is a negative, including "completely off topic":
there the customer asks something unrelated and the assistant correctly declines and offers the
menu, which is what a support bot should do and not a reason to call a person.

Usage: python -m evaluation.convert_taskmaster4 RAW.json OUT.jsonl
"""

from __future__ import annotations

import re
import sys
from typing import Any

from evaluation.generic_format import (
    Record,
    Speaker,
    conversation,
    convert_command,
    label,
    message,
    read_json_array,
)

ROLES: dict[str, Speaker] = {"user": "customer", "assistant": "bot"}
FAILURE_SCENARIO = re.compile(r"\b(no results|wrong results)\b", re.IGNORECASE)


def is_failure_scenario(scenario: str) -> bool:
    """True for the scenarios in which the assistant cannot give the customer what they asked."""
    return FAILURE_SCENARIO.search(scenario) is not None


def convert_dialogue(dialogue: dict[str, Any]) -> Record:
    """One Taskmaster-4 dialogue as a generic conversation with its label."""
    scenario = str(dialogue["scenario"])
    events = [
        message(index, ROLES[utterance["speaker"]], utterance["text"])
        for index, utterance in enumerate(dialogue["utterances"])
    ]
    source = f"taskmaster4 scenario: {scenario}"
    first_reply = next((event["id"] for event in events if event["role"] == "bot"), None)
    if is_failure_scenario(scenario) and first_reply is not None:
        verdict = label(True, source, first_reply)
    else:
        verdict = label(False, source)
    metadata = {"dataset": "taskmaster4-coffee", "scenario": scenario}
    return conversation(f"tm4-{dialogue['conversation_id']}", events, verdict, metadata)


def main(argv: list[str]) -> int:
    """Convert RAW to OUT.jsonl; print how many conversations and positives were written."""
    return convert_command(
        argv,
        usage="python -m evaluation.convert_taskmaster4 RAW.json OUT.jsonl",
        read=read_json_array,
        convert=convert_dialogue,
    )


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
