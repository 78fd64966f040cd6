"""Column types that behave the same on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime
from operator import attrgetter
from typing import Any

from sqlalchemy import JSON, DateTime
from sqlalchemy.dialects.postgresql import JSON as PG_JSON
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator, TypeEngine


class UtcDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every backend.

    PostgreSQL keeps `timestamptz`; SQLite has no time zones, so values are stored as naive UTC
    and made aware again when read, so that callers only ever see aware UTC datetimes.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Refuse naive datetimes (their zone is a guess) and store UTC."""
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value!r}: storage needs timezone-aware datetimes")
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Attach UTC to what SQLite returns; normalise what PostgreSQL returns to UTC."""
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


# A time's fields, read in one C call.
_fields = attrgetter("year", "month", "day", "hour", "minute", "second", "microsecond")


def sqlite_utc_text(value: datetime) -> str:
    """What `UtcDateTime` stores on SQLite for `value`, in one step.

    The same text as UtcDateTime's bind conversion followed by SQLAlchemy's SQLite DATETIME
    one ("YYYY-MM-DD HH:MM:SS.ffffff", naive UTC), for the hot insert path, where running the
    two conversions (a format string filled from a dict) cost more than SQLite's own work.
    Naive datetimes are refused, as there.
    """
    if value.tzinfo is UTC:  # the usual case: connectors convert every time to UTC
        # Printf-style formatting: half the cost of `isoformat`, which reads the offset first,
        # and of an f-string's per-field format calls.
        return "%04d-%02d-%02d %02d:%02d:%02d.%06d" % _fields(value)  # noqa: UP031
    offset = value.utcoffset()
    if offset is None:
        raise ValueError(f"naive datetime {value!r}: storage needs timezone-aware datetimes")
    if offset:
        value = value.astimezone(UTC)
    # A UTC time's text ends in "+00:00"; a year always has four digits: the first 26
    # characters are the naive text, without building a naive copy first.
    return value.isoformat(" ", "microseconds")[:26]


def json_type() -> TypeEngine[Any]:
    """JSON on SQLite, JSONB on PostgreSQL; Python None is stored as SQL NULL."""
    return JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")


def json_text_type() -> TypeEngine[Any]:
    """JSON kept as the very text written, on both databases (PostgreSQL's `json`, not `jsonb`,
    which stores a parsed form and gives back another text); Python None is stored as SQL NULL.
    For a value whose stored text is compared with the text last written (the engine's state:
    `bot.pipeline.SavedStates`)."""
    return JSON(none_as_null=True).with_variant(PG_JSON(none_as_null=True), "postgresql")
