"""Where the bot can post: the conversation reference recorded for each Teams channel it is in."""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Protocol


class ChannelDirectory(Protocol):
    """Conversation references by Teams channel id ("19:...@thread.tacv2")."""

    async def save(self, channel_id: str, reference: dict[str, Any]) -> None:
        """Record (or refresh) how to reach a channel."""
        ...

    async def get(self, channel_id: str) -> dict[str, Any] | None:
        """The recorded reference for a channel, or None when the bot was never added there."""
        ...

    async def all(self) -> dict[str, dict[str, Any]]:
        """Every channel the bot knows, by channel id."""
        ...


class JsonFileChannelDirectory:
    """A `ChannelDirectory` kept in one JSON file, for deployments without a database."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._lock = asyncio.Lock()

    def _read(self) -> dict[str, dict[str, Any]]:
        try:
            data = json.loads(self._path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        if not isinstance(data, dict):
            raise ValueError(f"{self._path}: expected a JSON object of channel references")
        return data

    def _write(self, data: dict[str, dict[str, Any]]) -> None:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        # Write beside the target and rename, so a crash never leaves a half-written file.
        handle, temporary = tempfile.mkstemp(dir=self._path.parent, prefix=".channels-")
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as out:
                json.dump(data, out, indent=2, sort_keys=True)
                out.flush()
                os.fsync(out.fileno())
            os.replace(temporary, self._path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise

    async def save(self, channel_id: str, reference: dict[str, Any]) -> None:
        """Record (or refresh) how to reach a channel."""
        async with self._lock:
            data = await asyncio.to_thread(self._read)
            data[channel_id] = reference
            await asyncio.to_thread(self._write, data)

    async def get(self, channel_id: str) -> dict[str, Any] | None:
        """The recorded reference for a channel, or None when the bot was never added there."""
        async with self._lock:
            return (await asyncio.to_thread(self._read)).get(channel_id)

    async def all(self) -> dict[str, dict[str, Any]]:
        """Every channel the bot knows, by channel id."""
        async with self._lock:
            return await asyncio.to_thread(self._read)
