"""Service settings, read once from the environment (secrets never come from files)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path


class SettingsError(ValueError):
    """An environment variable has a value the service cannot use."""


def _int(environ: Mapping[str, str], name: str, default: int, minimum: int = 1) -> int:
    raw = environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name}: expected a whole number, got {raw!r}") from None
    if value < minimum:
        raise SettingsError(f"{name}: must be at least {minimum}, got {value}")
    return value


@dataclass(frozen=True)
class Settings:
    """Everything the service reads from its environment."""

    database_url: str | None = None  # None: the embedded SQLite file under data_dir
    rules_path: Path = Path("rules.yaml")
    data_dir: Path = Path("var")
    host: str = "127.0.0.1"
    port: int = 8080
    # Where people reach the service (transcript links on cards); defaults to http://host:port.
    public_url: str | None = None
    max_body_bytes: int = 1024 * 1024
    # How long a delivery worker holds an outbox row; a crashed worker's rows wait this long.
    delivery_lease_seconds: int = 60
    # Ingest writer threads (groups committing at once; 0: groups are committed on the event
    # loop's thread); None: 0 on SQLite, 2 on PostgreSQL.
    ingest_writers: int | None = None
    # Secrets: kept out of repr so that they never reach a log line.
    webhook_secret: str | None = field(default=None, repr=False)
    dashboard_token: str | None = field(default=None, repr=False)
    environ: Mapping[str, str] = field(default_factory=dict, repr=False)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read the settings from `environ` (default: the process environment)."""
        env = dict(os.environ if environ is None else environ)
        data_dir = Path(env.get("ESCALATIONS_DATA_DIR", "var"))
        return cls(
            database_url=env.get("ESCALATIONS_DATABASE_URL") or None,
            rules_path=Path(env.get("ESCALATIONS_RULES", "rules.yaml")),
            data_dir=data_dir,
            host=env.get("ESCALATIONS_HOST", "127.0.0.1"),
            port=_int(env, "ESCALATIONS_PORT", 8080, minimum=0),
            public_url=(env.get("ESCALATIONS_PUBLIC_URL") or None),
            max_body_bytes=_int(env, "ESCALATIONS_MAX_BODY_BYTES", 1024 * 1024),
            delivery_lease_seconds=_int(env, "ESCALATIONS_DELIVERY_LEASE_SECONDS", 60, minimum=5),
            ingest_writers=(
                _int(env, "ESCALATIONS_INGEST_WRITERS", 0, minimum=0)
                if (env.get("ESCALATIONS_INGEST_WRITERS") or "").strip()
                else None
            ),
            webhook_secret=env.get("ESCALATIONS_WEBHOOK_SECRET") or None,
            dashboard_token=env.get("ESCALATIONS_DASHBOARD_TOKEN") or None,
            environ=env,
        )

    @property
    def resolved_database_url(self) -> str:
        """The database URL in force: the configured one, or SQLite in the data directory."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.data_dir / 'escalations.db'}"

    @property
    def base_url(self) -> str:
        """The URL people use to reach the service, without a trailing slash."""
        if self.public_url:
            return self.public_url.rstrip("/")
        return f"http://{self.host}:{self.port}"
