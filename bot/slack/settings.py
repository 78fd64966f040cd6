"""Slack configuration, read from the environment only."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field

logger = logging.getLogger(__name__)

DEFAULT_API_URL = "https://slack.com/api/"


@dataclass(frozen=True, slots=True)
class SlackSettings:
    """Credentials and the Web API base URL; the repr never shows the secrets."""

    bot_token: str = field(repr=False)
    signing_secret: str = field(repr=False)
    api_url: str = DEFAULT_API_URL

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> SlackSettings | None:
        """Settings from SLACK_BOT_TOKEN, SLACK_SIGNING_SECRET and SLACK_API_URL; None if off."""
        token = environ.get("SLACK_BOT_TOKEN", "").strip()
        secret = environ.get("SLACK_SIGNING_SECRET", "").strip()
        if not token or not secret:
            missing = [
                name
                for name, value in (("SLACK_BOT_TOKEN", token), ("SLACK_SIGNING_SECRET", secret))
                if not value
            ]
            logger.warning("Slack is off: %s not set", " and ".join(missing))
            return None
        api_url = environ.get("SLACK_API_URL", "").strip() or DEFAULT_API_URL
        # slack_sdk joins method names onto the base URL, so it must end with a slash.
        if not api_url.endswith("/"):
            api_url += "/"
        return cls(bot_token=token, signing_secret=secret, api_url=api_url)
