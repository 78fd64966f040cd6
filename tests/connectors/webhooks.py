"""Requests as platforms post them to /webhooks/<name>: one factory for the connector tests."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from connectors.base import InboundRequest

FIXTURES = Path(__file__).parents[1] / "fixtures" / "platforms"


@dataclass(frozen=True, slots=True)
class Webhook:
    """JSON posts to one platform's webhook URL, from literal bodies or from fixture files."""

    platform: str  # the URL segment
    received_at: datetime | None = None  # when each request arrived; None means "now"

    @property
    def url(self) -> str:
        """Where the platform posts."""
        return f"https://escalations.example.com/webhooks/{self.platform}"

    def post(
        self, body: bytes, headers: dict[str, str] | None = None, url: str | None = None
    ) -> InboundRequest:
        """A POST of `body` with `headers` (none by default), to `url` when given."""
        return InboundRequest(
            url=url or self.url,
            headers=headers or {},
            body=body,
            content_type="application/json",
            received_at=self.received_at,
        )

    def fixture(self, name: str) -> InboundRequest:
        """A POST of the fixture file `name`, byte for byte."""
        return self.post((FIXTURES / name).read_bytes())
