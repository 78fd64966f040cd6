"""The committed development set: every line is a labelled conversation the connector accepts."""

import json
from pathlib import Path
from typing import Any

import pytest

from connectors.generic import parse_generic_object

DATA = Path(__file__).resolve().parents[2] / "evaluation" / "data"
FILES = sorted(DATA.glob("*.jsonl"))


def lines_of(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def test_the_development_set_has_the_three_datasets_and_the_handwritten_file() -> None:
    assert [path.name for path in FILES] == [
        "dbdc3_en.jsonl",
        "handwritten.jsonl",
        "sgd_notify_failure.jsonl",
        "taskmaster4_coffee.jsonl",
    ]


@pytest.mark.parametrize("path", FILES, ids=lambda path: path.stem)
def test_every_line_parses_and_carries_a_consistent_label(path: Path) -> None:
    ids = set()
    for number, obj in enumerate(lines_of(path), start=1):
        batch = parse_generic_object(obj, f"{path.name}:{number}")
        label = obj["label"]
        assert isinstance(label["needs_human"], bool)
        assert label["source"]
        event_ids = [event.event_id for event in batch.events]
        if "needs_human_from" in label:
            assert label["needs_human"] is True
            assert label["needs_human_from"] in event_ids
        ids.add(batch.conversation_id)
    assert len(ids) == len(lines_of(path))


def test_the_handwritten_set_is_about_half_conversations_that_need_a_human() -> None:
    labels = [obj["label"] for obj in lines_of(DATA / "handwritten.jsonl")]

    assert len(labels) == 66
    assert sum(label["needs_human"] for label in labels) == 34
    assert all("needs_human_from" in label for label in labels if label["needs_human"])


def test_the_handwritten_set_asks_for_a_human_in_five_languages_and_also_declines_one() -> None:
    conversations = lines_of(DATA / "handwritten.jsonl")
    by_id = {obj["conversation_id"]: obj for obj in conversations}
    languages = {
        obj["metadata"].get("language", "en")
        for obj in conversations
        if obj["conversation_id"].startswith("hw-request-")
    }

    assert languages == {"en", "de", "es", "fr", "pt"}
    assert by_id["hw-negated-no-agent-needed"]["label"]["needs_human"] is False
    assert by_id["hw-negated-no-agent-needed"]["events"][0]["text"] == (
        "I don't need an agent, just tell me your opening hours."
    )
