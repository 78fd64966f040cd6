"""Who may read the dashboard: an admin token, signed expiring sessions, CSRF, login throttling.

A session is a cookie holding `payload.signature`, where the payload carries the expiry and the
session's CSRF token and the signature is an HMAC-SHA256 under a server secret. Nothing is kept on
the server, so several replicas sharing ESCALATIONS_SESSION_SECRET accept each other's sessions;
without it each process draws a random secret and sessions end with the process.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

# Names of environment variables, not secrets.
TOKEN_ENV = "ESCALATIONS_DASHBOARD_TOKEN"  # noqa: S105
SECRET_ENV = "ESCALATIONS_SESSION_SECRET"  # noqa: S105
HOURS_ENV = "ESCALATIONS_SESSION_HOURS"
SESSION_COOKIE = "escalations_session"
LOGIN_CSRF_COOKIE = "escalations_login_csrf"
DEFAULT_SESSION_HOURS = 8.0


@dataclass(frozen=True, slots=True)
class DashboardSession:
    """A logged-in browser: when its session ends and the token its forms must carry."""

    expires_at: datetime
    csrf: str


def same_secret(given: str, expected: str) -> bool:
    """Compare secrets in time that does not depend on where they differ."""
    return hmac.compare_digest(given.encode(), expected.encode())


class SessionSigner:
    """Issues and checks signed, expiring session cookies."""

    def __init__(self, secret: bytes, lifetime: timedelta) -> None:
        self._secret = secret
        self.lifetime = lifetime

    def issue(self, now: datetime) -> tuple[str, DashboardSession]:
        """A new session starting now, and the cookie value that carries it."""
        session = DashboardSession(now + self.lifetime, secrets.token_urlsafe(24))
        payload = json.dumps(
            {"exp": int(session.expires_at.timestamp()), "csrf": session.csrf},
            separators=(",", ":"),
        ).encode()
        encoded = base64.urlsafe_b64encode(payload).decode().rstrip("=")
        return f"{encoded}.{self._sign(encoded)}", session

    def read(self, cookie: str | None, now: datetime) -> DashboardSession | None:
        """The session in a cookie; None when absent, forged, malformed or expired."""
        if not cookie or "." not in cookie:
            return None
        encoded, signature = cookie.rsplit(".", 1)
        if not same_secret(signature, self._sign(encoded)):
            return None
        try:
            data = json.loads(base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)))
            expires_at = datetime.fromtimestamp(int(data["exp"]), tz=now.tzinfo)
            csrf = str(data["csrf"])
        except (ValueError, KeyError, TypeError, binascii.Error):
            return None
        if expires_at <= now:
            return None
        return DashboardSession(expires_at, csrf)

    def _sign(self, encoded: str) -> str:
        return hmac.new(self._secret, encoded.encode(), hashlib.sha256).hexdigest()


@dataclass
class LoginThrottle:
    """Refuses further login attempts from an address after too many recent failures."""

    max_failures: int = 5
    window: timedelta = timedelta(minutes=5)
    _failures: dict[str, deque[datetime]] = field(default_factory=dict)

    def retry_after(self, address: str, now: datetime) -> float | None:
        """Seconds until the address may try again; None when it may try now."""
        recent = self._recent(address, now)
        if len(recent) < self.max_failures:
            return None
        return max(1.0, (recent[0] + self.window - now).total_seconds())

    def failed(self, address: str, now: datetime) -> None:
        """Count one failed attempt."""
        self._recent(address, now).append(now)

    def succeeded(self, address: str) -> None:
        """Forget the address's failures."""
        self._failures.pop(address, None)

    def _recent(self, address: str, now: datetime) -> deque[datetime]:
        recent = self._failures.setdefault(address, deque())
        while recent and recent[0] + self.window <= now:
            recent.popleft()
        return recent


@dataclass
class DashboardAuth:
    """The dashboard's access policy, built once from the service's environment."""

    token: str | None = field(repr=False)
    signer: SessionSigner = field(repr=False)
    throttle: LoginThrottle
    secure_cookies: bool
    clock: Callable[[], datetime]

    @classmethod
    def from_env(
        cls,
        environ: Mapping[str, str],
        token: str | None,
        base_url: str,
        clock: Callable[[], datetime],
    ) -> DashboardAuth:
        """Read the session secret and lifetime; `token` is the configured admin token."""
        secret_text = environ.get(SECRET_ENV)
        secret = secret_text.encode() if secret_text else secrets.token_bytes(32)
        raw_hours = environ.get(HOURS_ENV)
        try:
            hours = float(raw_hours) if raw_hours else DEFAULT_SESSION_HOURS
        except ValueError:
            raise ValueError(
                f"{HOURS_ENV}: expected a number of hours, got {raw_hours!r}"
            ) from None
        if hours <= 0:
            raise ValueError(f"{HOURS_ENV}: must be more than 0, got {raw_hours!r}")
        return cls(
            token=token or None,
            signer=SessionSigner(secret, timedelta(hours=hours)),
            throttle=LoginThrottle(),
            secure_cookies=base_url.lower().startswith("https://"),
            clock=clock,
        )

    def bearer_ok(self, header: str | None) -> bool:
        """Whether an `Authorization: Bearer <token>` header carries the admin token."""
        if self.token is None or not header or not header.startswith("Bearer "):
            return False
        return same_secret(header.removeprefix("Bearer ").strip(), self.token)

    def password_ok(self, password: str) -> bool:
        """Whether a login form's password is the admin token."""
        return self.token is not None and same_secret(password, self.token)
