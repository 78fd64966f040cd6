"""The app package an admin uploads, and how Teams failures reach the delivery outbox."""

from __future__ import annotations

import json
import struct
import zipfile
import zlib
from pathlib import Path

import jsonschema  # type: ignore[import-untyped]  # no stubs in the dev dependencies
import pytest

from bot.app import StorageChannelDirectory
from bot.notifier import DeliveryError, Forbidden, NotFound, RateLimited, Unavailable
from bot.teams.package import MANIFEST_DIR, build_package, main
from bot.teams.throttle import ConversationThrottle
from tests.teams.teams_activities import ESCALATIONS_CHANNEL
from tests.teams.teams_fake_connector import SCHEMAS
from tests.teams.teams_world import TeamsWorld, sample_card

APP_ID = "8f2d5a40-1b2c-4d3e-9f00-0123456789ab"


def _png(data: bytes) -> tuple[int, int, bytes]:
    """Width, height and raw RGBA rows of a PNG this project wrote (one IDAT chunk)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height, depth, color_type = struct.unpack(">IIBB", data[16:26])
    assert (depth, color_type) == (8, 6)
    length = struct.unpack(">I", data[33:37])[0]
    assert data[37:41] == b"IDAT"
    return width, height, zlib.decompress(data[41 : 41 + length])


def test_the_app_package_validates_against_the_teams_manifest_schema(tmp_path: Path) -> None:
    out = build_package(tmp_path / "escalations.zip", APP_ID, "escalations.acme.test")

    with zipfile.ZipFile(out) as archive:
        assert sorted(archive.namelist()) == ["color.png", "manifest.json", "outline.png"]
        manifest = json.loads(archive.read("manifest.json"))
        color = _png(archive.read("color.png"))
        outline = _png(archive.read("outline.png"))

    schema = json.loads((SCHEMAS / "MicrosoftTeams-1.30.schema.json").read_text())
    jsonschema.Draft4Validator(schema).validate(manifest)
    assert manifest["manifestVersion"] == "1.30"
    assert manifest["id"] == manifest["bots"][0]["botId"] == APP_ID
    assert manifest["bots"][0]["scopes"] == ["team", "groupChat", "personal"]
    assert manifest["validDomains"] == ["escalations.acme.test"]
    assert manifest["developer"]["privacyUrl"] == "https://escalations.acme.test/privacy"
    assert color[:2] == (192, 192)
    assert outline[:2] == (32, 32)


def test_the_outline_icon_is_white_on_transparent() -> None:
    width, _, rows = _png((MANIFEST_DIR / "outline.png").read_bytes())
    stride = 1 + 4 * width
    pixels = {
        bytes(rows[row * stride + 1 + 4 * x : row * stride + 5 + 4 * x])
        for row in range(width)
        for x in range(width)
    }
    assert pixels == {b"\xff\xff\xff\xff", b"\x00\x00\x00\x00"}


def test_the_committed_manifest_is_valid_as_it_stands() -> None:
    manifest = json.loads((MANIFEST_DIR / "manifest.json").read_text())
    schema = json.loads((SCHEMAS / "MicrosoftTeams-1.30.schema.json").read_text())
    jsonschema.Draft4Validator(schema).validate(manifest)


def test_the_package_command_refuses_an_app_id_that_is_not_a_guid(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status = main([str(tmp_path / "x.zip"), "--domain", "a.test", "--app-id", "my-bot"])

    assert status == 2
    assert "app id 'my-bot' is not a GUID" in capsys.readouterr().err
    assert not (tmp_path / "x.zip").exists()


@pytest.mark.parametrize(
    ("status", "headers", "expected", "message"),
    [
        (429, {"Retry-After": "7"}, RateLimited, "retry after 7s"),
        (412, {}, Unavailable, "HTTP 412"),
        (500, {}, Unavailable, "HTTP 500"),
        (502, {}, Unavailable, "HTTP 502"),
        (504, {}, Unavailable, "HTTP 504"),
        (403, {}, Forbidden, "HTTP 403"),
        (401, {}, Forbidden, "HTTP 401"),
        (404, {}, NotFound, "HTTP 404"),
    ],
)
async def test_teams_failures_map_to_the_outbox_error_types(
    world: TeamsWorld,
    status: int,
    headers: dict[str, str],
    expected: type[DeliveryError],
    message: str,
) -> None:
    await world.install()
    world.connector.fail_next(status, headers)

    with pytest.raises(expected, match=message):
        await world.notifier.post(sample_card(), ESCALATIONS_CHANNEL)


async def test_updating_a_deleted_message_is_not_found(world: TeamsWorld) -> None:
    await world.install()
    ref = await world.notifier.post(sample_card(), ESCALATIONS_CHANNEL)
    world.connector.messages.clear()

    with pytest.raises(NotFound):
        await world.notifier.update(ref, sample_card())


async def test_teams_unreachable_is_unavailable(world: TeamsWorld) -> None:
    await world.install()
    reference = await StorageChannelDirectory(world.database).get(ESCALATIONS_CHANNEL)
    assert reference is not None
    # Port 9 (discard) is closed on the test machine: the connection is refused.
    await StorageChannelDirectory(world.database).save(
        ESCALATIONS_CHANNEL, {**reference, "service_url": "http://127.0.0.1:9/"}
    )

    with pytest.raises(Unavailable):
        await world.notifier.post(sample_card(), ESCALATIONS_CHANNEL)


async def test_a_failed_update_is_reported_at_once_not_retried_inside_the_sdk(
    world: TeamsWorld,
) -> None:
    await world.install()
    ref = await world.notifier.post(sample_card(), ESCALATIONS_CHANNEL)
    world.connector.fail_next(503)
    world.connector.fail_next(503)

    with pytest.raises(Unavailable):
        await world.notifier.update(ref, sample_card())

    assert [call.status for call in world.connector.calls if call.operation == "update"] == [503]


def test_the_throttle_keeps_within_teams_per_conversation_limits() -> None:
    now = [100.0]
    throttle = ConversationThrottle(clock=lambda: now[0])

    for _ in range(7):
        throttle.acquire("19:a@thread.tacv2")
    with pytest.raises(RateLimited) as limited:
        throttle.acquire("19:a@thread.tacv2")
    throttle.acquire("19:b@thread.tacv2")  # another conversation has its own budget
    now[0] += limited.value.retry_after

    throttle.acquire("19:a@thread.tacv2")
    assert limited.value.retry_after == pytest.approx(1.0)
