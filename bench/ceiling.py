"""The ceiling: a bare aiohttp server that parses a small JSON post, runs VADER on one message
and answers 200. Nothing the service does per event can be cheaper, so its throughput, measured
in the same run, is what the service's figures are compared with.

    python -m bench.ceiling --port 8090
"""

from __future__ import annotations

import argparse
import json
import os

from aiohttp import web

from engine.sentiment import vader_compound


async def handle(request: web.Request) -> web.Response:
    """Parse the post, score its first message, answer 200."""
    payload = json.loads(await request.read())
    compound = vader_compound(payload["events"][0]["text"])
    return web.json_response({"status": "stored", "compound": compound})


async def healthz(request: web.Request) -> web.Response:
    """Ready."""
    return web.json_response({"status": "ok"})


def create_app() -> web.Application:
    """The ceiling server's application."""
    app = web.Application()
    app.add_routes([web.post("/webhooks/{name}", handle), web.get("/healthz", healthz)])
    return app


def main() -> None:
    """Serve until killed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8090)
    parser.add_argument("--cpu", type=int, default=None, help="pin this process to one CPU")
    args = parser.parse_args()
    if args.cpu is not None:
        os.sched_setaffinity(0, {args.cpu})
    vader_compound("warm up the analyzer")
    web.run_app(create_app(), host=args.host, port=args.port, access_log=None, print=None)


if __name__ == "__main__":
    main()
