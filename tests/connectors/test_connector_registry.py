"""The registry: every platform at /webhooks/<name>, each with its own secret, each fixture read."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import urlencode

import pytest

from connectors.base import BaseConnector, InboundRequest, header
from connectors.registry import CONNECTORS, get_connector

FIXTURES = Path(__file__).parents[1] / "fixtures" / "platforms"
# Which connector reads which fixture files (by file-name prefix).
PREFIXES = {
    "sunshine_": "sunshine",
    "intercom_": "intercom",
    "rasa_": "rasa",
    "dialogflow_cx_": "dialogflow-cx",
    "dialogflow_es_": "dialogflow-es",
    "lexv2_": "lex-v2",
    "liveperson_": "liveperson",
    "twilio_on": "twilio",
    "botframework_": "botframework",
}


def test_every_platform_is_registered_under_its_url_name() -> None:
    assert sorted(CONNECTORS) == [
        "botframework",
        "botpress",
        "chatwoot",
        "dialogflow-cx",
        "dialogflow-es",
        "generic",
        "intercom",
        "lex-v2",
        "liveperson",
        "rasa",
        "sunshine",
        "twilio",
    ]
    assert all(get_connector(name) is connector for name, connector in CONNECTORS.items())


def test_each_connector_names_its_own_secret_variable_and_how_it_verifies() -> None:
    variables = [connector.secret_env for connector in CONNECTORS.values()]

    assert len(set(variables)) == len(variables)
    assert all(v.startswith("ESCALATIONS_") and v.endswith("_SECRET") for v in variables)
    assert all(connector.verification for connector in CONNECTORS.values())


def test_platforms_that_expect_their_own_answer_override_respond() -> None:
    own_answer = {
        name
        for name, connector in CONNECTORS.items()
        if any("respond" in vars(cls) for cls in type(connector).__mro__[:-2])
    }

    assert type(CONNECTORS["generic"]).__mro__[-2:] == (BaseConnector, object)
    assert own_answer == {"dialogflow-cx", "dialogflow-es", "lex-v2"}
    assert CONNECTORS["dialogflow-cx"].respond([]) == ("application/json", b"{}")


def _request_for(path: Path) -> InboundRequest:
    if path.name.startswith("twilio_on"):
        pairs = json.loads(path.read_text())["params"]
        body = urlencode([(key, value) for key, value in pairs]).encode()
        return InboundRequest(
            "https://x/webhooks/twilio", {}, body, "application/x-www-form-urlencoded"
        )
    data = json.loads(path.read_text())
    if path.name.startswith("liveperson_") and isinstance(data, dict) and "headers" in data:
        data = data["body"]
    return InboundRequest("https://x/webhooks/", {}, json.dumps(data).encode(), "application/json")


# One post per example trigger, not one post: its own test walks it.
COLLECTIONS = {"sunshine_conversations_all_webhook_examples.json"}
PLATFORM_FILES = sorted(
    path
    for path in FIXTURES.iterdir()
    if path.suffix in (".json", ".transcript")
    and any(path.name.startswith(p) for p in PREFIXES)
    and path.name not in COLLECTIONS
)


@pytest.mark.parametrize("path", PLATFORM_FILES, ids=[p.name for p in PLATFORM_FILES])
def test_every_platform_fixture_is_read_by_its_connector(path: Path) -> None:
    name = next(name for prefix, name in PREFIXES.items() if path.name.startswith(prefix))

    batches = CONNECTORS[name].parse(_request_for(path))

    for batch in batches:
        assert batch.events, "a batch is never empty"
        assert all(event.timestamp.tzinfo is not None for event in batch.events)
        assert len({event.event_id for event in batch.events}) == len(batch.events)


def test_every_fixture_file_is_used_and_described() -> None:
    readme = (FIXTURES / "README.md").read_text()
    files = [p.name for p in FIXTURES.iterdir() if p.name != "README.md"]

    assert [name for name in files if name not in readme] == []
    # The Twilio signature vectors and the Sunshine collection are read by their own tests.
    assert len(PLATFORM_FILES) == len(files) - 2


def test_headers_are_looked_up_whatever_their_case() -> None:
    headers = {"X-Hub-Signature": "sha1=abc"}

    assert header(headers, "x-hub-signature") == "sha1=abc"
    assert header(headers, "X-HUB-SIGNATURE") == "sha1=abc"
    assert header(headers, "X-Other") is None
