"""The manifest an admin pastes into Slack must match what the app actually serves."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from bot.slack.app import COMMAND, EVENTS_PATH

MANIFEST = Path(__file__).parents[2] / "manifest" / "slack.yaml"


def _manifest() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(MANIFEST.read_text(encoding="utf-8"))
    return data


def test_every_slack_url_in_the_manifest_points_at_the_events_endpoint() -> None:
    manifest = _manifest()
    urls = [
        manifest["settings"]["event_subscriptions"]["request_url"],
        manifest["settings"]["interactivity"]["request_url"],
        *(command["url"] for command in manifest["features"]["slash_commands"]),
    ]

    assert all(url.startswith("https://") and url.endswith(EVENTS_PATH) for url in urls)


def test_the_manifest_declares_the_command_app_home_and_scopes_the_app_uses() -> None:
    manifest = _manifest()

    assert [c["command"] for c in manifest["features"]["slash_commands"]] == [COMMAND]
    assert manifest["features"]["app_home"]["home_tab_enabled"] is True
    assert manifest["settings"]["event_subscriptions"]["bot_events"] == ["app_home_opened"]
    assert manifest["settings"]["interactivity"]["is_enabled"] is True
    assert manifest["settings"]["socket_mode_enabled"] is False
    assert {"chat:write", "commands"} <= set(manifest["oauth_config"]["scopes"]["bot"])
    # Finding a card whose post was never recorded: read history, resolve a #name to its id.
    assert {"channels:history", "groups:history", "channels:read", "groups:read"} <= set(
        manifest["oauth_config"]["scopes"]["bot"]
    )
    # Slack rejects a long description shorter than 175 characters.
    assert 175 <= len(manifest["display_information"]["long_description"]) <= 4000
