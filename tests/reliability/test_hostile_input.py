"""Hostile input: whatever arrives gets a clear 4xx or is stored whole; never a 500.

Property-based (hypothesis) over every connector's parser, over the generic webhook end to end
(signed, through the real app and database), and over the rules loader.
"""

from __future__ import annotations

import asyncio
import io
import json
import string
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from bot.app import Service, build_service, create_app
from bot.config import Settings
from connectors.base import ConnectorError, InboundRequest
from connectors.generic import sign
from connectors.registry import CONNECTORS
from engine.rules_loader import RulesError, load_rules
from storage import tables
from tests.bot.conftest import Clock
from tests.reliability.harness import REPO, T0, WEBHOOK_SECRET, angry_events, post_body

GOOD_RULES = (REPO / "rules.yaml").read_text()
FORM = "application/x-www-form-urlencoded"
E = TypeVar("E", bound=Exception)
EXAMPLES = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# --- strategies ----------------------------------------------------------------------------

json_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=50)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5)
    ),
    max_leaves=30,
)
hostile_text = st.text(
    alphabet=st.characters(codec=None, min_codepoint=0, max_codepoint=0x10FFFF), max_size=200
)


def _event(**overrides: Any) -> dict[str, Any]:
    base = angry_events()[0]
    base.update(overrides)
    return base


@st.composite
def generic_shaped(draw: st.DrawFn) -> bytes:
    """A generic-format post with one part replaced by something wrong or strange."""
    post: dict[str, Any] = json.loads(post_body("c-h", angry_events()))
    where = draw(st.sampled_from(["top", "event", "meta", "text", "id", "many", "old"]))
    if where == "top":
        post[draw(st.sampled_from(["conversation_id", "events", "customer", "metadata"]))] = draw(
            json_values
        )
    elif where == "event":
        field = draw(st.sampled_from(["id", "type", "role", "timestamp", "fallback", "text"]))
        post["events"][draw(st.integers(0, 4))][field] = draw(json_values)
    elif where == "meta":
        post["metadata"] = {draw(st.text(max_size=20)): draw(json_values)}
    elif where == "text":
        post["events"][0]["text"] = draw(hostile_text)
        post["customer"]["name"] = draw(hostile_text)
    elif where == "id":
        post["conversation_id"] = draw(hostile_text)
    elif where == "many":
        count = draw(st.integers(1, 1100))
        post["events"] = [_event(id=f"e{index}") for index in range(count)]
    else:
        post["events"][0]["timestamp"] = draw(
            st.sampled_from(
                [
                    "1970-01-01T00:00:00Z",
                    "0001-01-01T00:00:00Z",
                    "9999-12-31T23:59:59Z",
                    "2026-13-45T99:00:00Z",
                ]
            )
        )
    return json.dumps(post).encode()


def _unicode_escaped(text: str) -> bytes:
    return json.dumps({"conversation_id": "c-u", "events": [_event(text=text)]}).encode()


bodies = st.one_of(
    st.binary(max_size=300),
    json_values.map(lambda value: json.dumps(value).encode()),
    generic_shaped(),
    # Truncated JSON.
    st.tuples(generic_shaped(), st.integers(0, 400)).map(lambda pair: pair[0][: pair[1]]),
    # Deep nesting.
    st.integers(10, 200_000).map(lambda depth: b"[" * depth + b"]" * depth),
    st.integers(10, 200_000).map(lambda depth: b'{"a":' * depth + b"1" + b"}" * depth),
    # Escapes JSON allows and databases do not: NUL, lone surrogates.
    st.sampled_from(["\x00", "\ud800", "a\udfffb", "\ufeff", "\u202e"]).map(_unicode_escaped),
    # Huge strings.
    st.integers(20_000, 300_000).map(lambda size: _unicode_escaped("x" * size)),
)


# --- every connector's parser --------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(CONNECTORS))
@EXAMPLES
@given(
    body=bodies,
    content_type=st.sampled_from(["application/json", "application/x-www-form-urlencoded"]),
)
def test_every_connector_parses_any_body_into_events_or_a_clear_error(
    name: str, body: bytes, content_type: str
) -> None:
    connector = CONNECTORS[name]
    request = InboundRequest(
        url=f"https://escalations.example.com/webhooks/{name}",
        headers={"Content-Type": content_type},
        body=body,
        content_type=content_type,
    )
    refusal = _refusal(lambda: connector.parse(request), ConnectorError)
    if refusal is not None:
        assert 400 <= refusal.status < 500
        assert str(refusal).strip()


def _refusal(action: Callable[[], object], kind: type[E]) -> E | None:
    """The `kind` exception `action` raised, or None when it returned (anything else raises)."""
    try:
        action()
    except kind as error:
        return error
    return None


# --- the generic webhook end to end --------------------------------------------------------


@dataclass
class Live:
    loop: asyncio.AbstractEventLoop
    client: TestClient[Any, Any]
    service: Service

    def post(self, body: bytes, headers: dict[str, str] | None = None) -> tuple[int, Any]:
        async def go() -> tuple[int, Any]:
            response = await self.client.post(
                "/webhooks/generic",
                data=io.BytesIO(body),
                headers=headers
                if headers is not None
                else {
                    "Content-Type": "application/json",
                    "X-Escalations-Signature": sign(WEBHOOK_SECRET, body),
                },
            )
            return response.status, await response.json()

        return self.loop.run_until_complete(go())

    def count(self, table: Any) -> int:
        with self.service.database.session(read_only=True) as session:
            return int(
                session.connection().execute(select(func.count()).select_from(table)).scalar_one()
            )


@contextmanager
def live_service(tmp_path: Path, database_url: str | None = None, **environ: str) -> Iterator[Live]:
    """The real app on SQLite with its own event loop, for hypothesis's synchronous examples."""
    loop = asyncio.new_event_loop()
    env = {"ESCALATIONS_WEBHOOK_SECRET": WEBHOOK_SECRET, **environ}
    settings_ = Settings(
        rules_path=REPO / "rules.yaml",
        data_dir=tmp_path / "data",
        database_url=database_url or f"sqlite:///{tmp_path / 'escalations.db'}",
        max_body_bytes=256 * 1024,
        environ=env,
    )
    service = build_service(settings_, clock=Clock(T0 + timedelta(minutes=1)))

    async def start() -> TestClient[Any, Any]:
        app = create_app(service, watch_rules_every=None, run_delivery=False)
        client: TestClient[Any, Any] = TestClient(TestServer(app))
        await client.start_server()
        return client

    try:
        client = loop.run_until_complete(start())
    except BaseException:
        loop.close()
        raise
    try:
        yield Live(loop, client, service)
    finally:
        loop.run_until_complete(client.close())
        loop.close()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'escalations.db'}"
    factory: Callable[[], str] = request.getfixturevalue("postgres_url_factory")
    return factory()


def test_signed_hostile_posts_get_a_clear_4xx_or_are_stored_whole_never_a_500(
    tmp_path: Path, database_url: str
) -> None:
    with live_service(tmp_path, database_url) as live:

        @EXAMPLES
        @given(body=bodies)
        def check(body: bytes) -> None:
            before = live.count(tables.events)
            status, answer = live.post(body)
            after = live.count(tables.events)
            assert status in (200, 400, 413), (status, answer)
            if status == 200:
                assert after - before == answer["stored"]
            else:
                assert answer["error"].strip()
                assert after == before  # nothing of a refused post is stored

        check()


def test_unsigned_forged_and_replayed_posts(tmp_path: Path) -> None:
    with live_service(tmp_path) as live:
        body = post_body("c-r", angry_events())
        status, answer = live.post(body, {"Content-Type": "application/json"})
        assert (status, answer["error"]) == (401, "missing X-Escalations-Signature header")
        forged = {"X-Escalations-Signature": sign("not-the-secret", body)}
        status, answer = live.post(body, forged)
        assert (status, answer["error"]) == (401, "signature does not match the body")
        tampered = {"X-Escalations-Signature": sign(WEBHOOK_SECRET, body)}
        status, answer = live.post(body.replace(b"refund", b"refunD"), tampered)
        assert status == 401

        status, first = live.post(body)
        assert (status, first["stored"], len(first["escalations_opened"])) == (200, 5, 1)
        # The same signed post replayed (a day later, by anyone who saw it): nothing changes.
        status, replay = live.post(body)
        assert (status, replay["stored"], replay["duplicates"]) == (200, 0, 5)
        assert replay["escalations_opened"] == []
        assert live.count(tables.escalations) == 1


def test_many_events_in_one_post_are_stored_up_to_the_limit(tmp_path: Path) -> None:
    with live_service(tmp_path) as live:
        events = [_event(id=f"e{index}") for index in range(1000)]
        status, answer = live.post(post_body("c-many", events))
        assert (status, answer["stored"]) == (200, 1000)
        status, answer = live.post(post_body("c-more", [*events, _event(id="e1000")]))
        assert (status, answer["error"]) == (400, "events: more than 1000 events (1001)")


def test_a_body_over_the_size_limit_is_refused_unread(tmp_path: Path) -> None:
    with live_service(tmp_path, ESCALATIONS_MAX_BODY_BYTES="2048") as live:
        body = post_body("c-big", [_event(text="x" * 300_000)])
        status, answer = live.post(body)
        assert status == 413
        assert answer["error"] == "body larger than the limit of 262144 bytes"


def test_the_per_source_rate_limit_answers_429_with_retry_after(tmp_path: Path) -> None:
    with live_service(tmp_path, ESCALATIONS_RATE_LIMIT_PER_MINUTE="3") as live:
        statuses = [live.post(post_body(f"c-{n}", angry_events()))[0] for n in range(4)]
        assert statuses == [200, 200, 200, 429]

        async def other_connector() -> tuple[int, str | None]:
            response = await live.client.post("/webhooks/rasa", data=b"{}")
            return response.status, response.headers.get("Retry-After")

        # The limit is per connector: another platform from the same address is not affected.
        assert live.loop.run_until_complete(other_connector())[0] == 401
        status, answer = live.post(post_body("c-5", angry_events()))
        assert status == 429
        assert "the limit is 3 a minute" in answer["error"]


# --- the rules loader ----------------------------------------------------------------------

yaml_text = st.one_of(
    st.text(max_size=400),
    st.tuples(st.integers(0, len(GOOD_RULES)), st.integers(0, len(GOOD_RULES))).map(
        lambda cut: GOOD_RULES[: min(cut)] + GOOD_RULES[max(cut) :]
    ),
    st.integers(1, 3_000).map(lambda depth: "a: " + "[" * depth + "]" * depth),
    st.integers(1, 3_000).map(lambda depth: "{a: " * depth + "1" + "}" * depth),
    st.sampled_from(
        [
            "&a [*a]",
            "a: &x !!python/object:os.system {}",
            "a: !!binary ====",
            "a: *nope",
            "\x00",
            "version: 1\n" * 3,
            "?",
        ]
    ),
    st.text(alphabet=string.printable, max_size=400).map(lambda noise: GOOD_RULES + noise),
)


@EXAMPLES
@given(text=yaml_text)
def test_the_rules_loader_accepts_or_names_every_problem_never_crashes(text: str) -> None:
    refusal = _refusal(lambda: load_rules(text), RulesError)
    if refusal is not None:
        assert refusal.problems
        assert all(str(problem).startswith("rules.yaml") for problem in refusal.problems)
