"""Draw the Teams app icons (a speech bubble with an exclamation mark) as PNGs, in pure Python.

Run `python -m bot.teams.icons DIR` to regenerate `color.png` (192x192) and `outline.png`
(32x32, white on transparent, as Teams requires).
"""

from __future__ import annotations

import struct
import sys
import zlib
from collections.abc import Callable
from pathlib import Path

Pixel = tuple[int, int, int, int]
ACCENT = (0x5B, 0x5F, 0xC7, 0xFF)
WHITE = (0xFF, 0xFF, 0xFF, 0xFF)
CLEAR = (0, 0, 0, 0)


def png_bytes(width: int, height: int, pixel: Callable[[int, int], Pixel]) -> bytes:
    """Encode an RGBA image, one filter byte per row, as a PNG file."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    rows = bytearray()
    for y in range(height):
        rows.append(0)
        for x in range(width):
            rows.extend(pixel(x, y))
    header = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(bytes(rows), 9))
        + chunk(b"IEND", b"")
    )


def _glyph(size: int) -> Callable[[float, float], bool]:
    """Whether a point (in units of the icon's size) is on the white glyph."""

    def on_glyph(u: float, v: float) -> bool:
        # Bubble: a rounded rectangle with a tail at the bottom left.
        left, top, right, bottom, radius = 0.16, 0.18, 0.84, 0.70, 0.12
        cx = min(max(u, left + radius), right - radius)
        cy = min(max(v, top + radius), bottom - radius)
        in_bubble = (u - cx) ** 2 + (v - cy) ** 2 <= radius**2
        in_tail = 0.26 <= u <= 0.44 and bottom <= v <= 0.86 and (u - 0.26) <= (0.86 - v) * 1.1
        # Exclamation mark, cut out of the bubble.
        in_bar = 0.455 <= u <= 0.545 and 0.27 <= v <= 0.50
        in_dot = (u - 0.5) ** 2 + (v - 0.59) ** 2 <= 0.05**2
        return (in_bubble or in_tail) and not (in_bar or in_dot)

    return on_glyph


def color_icon() -> bytes:
    """The 192x192 full-colour icon."""
    size = 192
    on_glyph = _glyph(size)
    return png_bytes(
        size, size, lambda x, y: WHITE if on_glyph((x + 0.5) / size, (y + 0.5) / size) else ACCENT
    )


def outline_icon() -> bytes:
    """The 32x32 outline icon: white on a transparent background."""
    size = 32
    on_glyph = _glyph(size)
    return png_bytes(
        size, size, lambda x, y: WHITE if on_glyph((x + 0.5) / size, (y + 0.5) / size) else CLEAR
    )


def main(argv: list[str]) -> int:
    """Write both icons into the directory given on the command line."""
    if len(argv) != 1:
        print("usage: python -m bot.teams.icons DIRECTORY", file=sys.stderr)
        return 2
    directory = Path(argv[0])
    (directory / "color.png").write_bytes(color_icon())
    (directory / "outline.png").write_bytes(outline_icon())
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
