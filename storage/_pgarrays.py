"""PostgreSQL text arrays sent in the server's binary format, built in one pass.

The ingest statements take their rows as one array per column (`unnest`). psycopg's own list
dumper looks through each list for its element type at every statement and dumps the elements
one Python call each; a text array built here is sent as it is, by a dumper registered on each
connection (`register`, from `storage.db`).
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Any, cast

from psycopg.abc import AdaptContext, Buffer
from psycopg.adapt import Dumper
from psycopg.pq import Format

__all__ = ["TextArray", "register", "text_array"]

_TEXT_OID = 25
_TEXT_ARRAY_OID = 1009
_ARRAY_HEADER = struct.Struct(">iiiii")  # dimensions, has NULLs, element type, length, start
_LENGTH = struct.Struct(">i").pack
_NULL_ELEMENT = _LENGTH(-1)


class TextArray(bytes):
    """A text[] value already in PostgreSQL's binary array format (`text_array`)."""


class _TextArrayDumper(Dumper):
    """Sends a `TextArray` as it is."""

    format = Format.BINARY
    oid = _TEXT_ARRAY_OID

    def dump(self, obj: Any) -> Buffer:
        return cast("bytes", obj)


def register(context: AdaptContext) -> None:
    """Let `context` (a psycopg connection) send `TextArray` values."""
    context.adapters.register_dumper(TextArray, _TextArrayDumper)


def text_array(values: Sequence[str | None]) -> TextArray:
    """`values` as a one-dimensional text[] in PostgreSQL's binary format (array_send): the
    header, then each element's length (-1 for NULL) and UTF-8 bytes."""
    parts = [_ARRAY_HEADER.pack(1, None in values, _TEXT_OID, len(values), 1)]
    append = parts.append
    for value in values:
        if value is None:
            append(_NULL_ELEMENT)
        else:
            data = value.encode()
            append(_LENGTH(len(data)))
            append(data)
    return TextArray(b"".join(parts))
