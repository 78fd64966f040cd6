"""Build the Teams app package (manifest.json + the two icons, zipped) that an admin uploads.

    python -m bot.teams.package OUT.zip --domain escalations.example.org [--app-id GUID]

The app id defaults to MICROSOFT_APP_ID, the same Azure bot registration the service runs as.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import zipfile
from pathlib import Path
from typing import Any

MANIFEST_DIR = Path(__file__).resolve().parents[2] / "manifest" / "teams"
PLACEHOLDER_DOMAIN = "escalations.example.com"
_GUID = re.compile(r"^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")
_ICONS = ("color.png", "outline.png")


def build_manifest(template: dict[str, Any], app_id: str, domain: str) -> dict[str, Any]:
    """The manifest for one deployment: its bot id and the domain the service answers on."""
    if not _GUID.match(app_id):
        raise ValueError(f"app id {app_id!r} is not a GUID (the bot's Microsoft App ID)")
    text = json.dumps(template).replace(PLACEHOLDER_DOMAIN, domain)
    manifest: dict[str, Any] = json.loads(text)
    manifest["id"] = app_id
    for bot in manifest["bots"]:
        bot["botId"] = app_id
    manifest["validDomains"] = [domain]
    return manifest


def build_package(out: Path, app_id: str, domain: str, source: Path = MANIFEST_DIR) -> Path:
    """Write the zip: manifest.json and the icons at its root, as Teams expects."""
    template = json.loads((source / "manifest.json").read_text(encoding="utf-8"))
    manifest = build_manifest(template, app_id, domain)
    out.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("manifest.json", json.dumps(manifest, indent=2, ensure_ascii=False))
        for icon in _ICONS:
            archive.write(source / icon, icon)
    return out


def main(argv: list[str] | None = None) -> int:
    """Command line entry point."""
    parser = argparse.ArgumentParser(prog="python -m bot.teams.package", description=__doc__)
    parser.add_argument("out", type=Path, help="where to write the .zip")
    parser.add_argument("--domain", required=True, help="host name the service is reached on")
    parser.add_argument("--app-id", default=os.environ.get("MICROSOFT_APP_ID", ""))
    args = parser.parse_args(argv)
    try:
        build_package(args.out, args.app_id, args.domain)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
