"""Configuration of the Teams bot, read from the environment."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

_APP_TYPES = {"multitenant": "MultiTenant", "singletenant": "SingleTenant"}


@dataclass(frozen=True, slots=True)
class TeamsSettings:
    """The bot's Azure identity, or the explicit no-auth mode for local testing."""

    app_id: str
    password: str | None = field(default=None, repr=False)
    tenant_id: str | None = None
    app_type: str = "MultiTenant"
    certificate_thumbprint: str | None = None
    certificate_private_key: str | None = field(default=None, repr=False)
    local_testing: bool = False

    def __post_init__(self) -> None:
        # An endpoint without an app id accepts unsigned traffic; that must be a deliberate choice.
        if not self.app_id and not self.local_testing:
            raise ValueError(
                "MICROSOFT_APP_ID is required (or set ESCALATIONS_TEAMS_LOCAL_TESTING=1 to accept "
                "unauthenticated activities on a developer machine)"
            )
        if self.app_type == "SingleTenant" and not self.tenant_id:
            raise ValueError("MICROSOFT_APP_TYPE=SingleTenant needs MICROSOFT_APP_TENANT_ID")
        if self.app_id and not (self.password or self.certificate_private_key):
            raise ValueError(
                "MICROSOFT_APP_ID is set but neither MICROSOFT_APP_PASSWORD nor "
                "MICROSOFT_APP_CERTIFICATE_KEY_FILE is"
            )

    @property
    def authenticated(self) -> bool:
        """True when the SDK validates every inbound token and signs every outbound call."""
        return bool(self.app_id)

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> TeamsSettings | None:
        """Settings from the environment; None when Teams is not configured at all."""
        app_id = environ.get("MICROSOFT_APP_ID", "").strip()
        local_testing = environ.get("ESCALATIONS_TEAMS_LOCAL_TESTING", "").strip() in {
            "1",
            "true",
            "yes",
        }
        if not app_id and not local_testing:
            return None
        raw_type = environ.get("MICROSOFT_APP_TYPE", "MultiTenant").strip() or "MultiTenant"
        app_type = _APP_TYPES.get(raw_type.lower())
        if app_type is None:
            raise ValueError(
                f"MICROSOFT_APP_TYPE={raw_type!r}: expected MultiTenant or SingleTenant"
            )
        key_file = environ.get("MICROSOFT_APP_CERTIFICATE_KEY_FILE", "").strip()
        private_key = Path(key_file).read_text(encoding="utf-8") if key_file else None
        return cls(
            app_id=app_id,
            password=environ.get("MICROSOFT_APP_PASSWORD") or None,
            tenant_id=environ.get("MICROSOFT_APP_TENANT_ID") or None,
            app_type=app_type,
            certificate_thumbprint=environ.get("MICROSOFT_APP_CERTIFICATE_THUMBPRINT") or None,
            certificate_private_key=private_key,
            local_testing=local_testing and not app_id,
        )
