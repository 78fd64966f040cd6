"""The `escalations` command: serve, demo, replay, rules check, eval, connectors, db."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from bot.config import Settings, SettingsError


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # APScheduler logs every run of every job at INFO; our jobs log what they did themselves.
    logging.getLogger("apscheduler").setLevel(logging.DEBUG if verbose else logging.WARNING)


def _cmd_serve(args: argparse.Namespace) -> int:
    from bot.serve import serve

    _setup_logging(args.verbose)
    settings = Settings.from_env()
    overrides: dict[str, object] = {}
    if args.host:
        overrides["host"] = args.host
    if args.port is not None:
        overrides["port"] = args.port
    if args.rules:
        overrides["rules_path"] = Path(args.rules)
    return serve(settings, demo=args.demo, **overrides)


def _cmd_rules_check(args: argparse.Namespace) -> int:
    from engine.rules_loader import check_rules_file

    ok, lines = check_rules_file(Path(args.file))
    stream = sys.stdout if ok else sys.stderr
    for line in lines:
        stream.write(line + "\n")
    return 0 if ok else 1


def _load_rules_or_exit(path: str) -> object:
    from engine.rules_loader import RulesError, load_rules_file

    try:
        return load_rules_file(Path(path))
    except RulesError as error:
        for problem in error.problems:
            sys.stderr.write(f"{problem}\n")
        raise SystemExit(1) from None
    except OSError as error:
        sys.stderr.write(f"{path}: {error.strerror}\n")
        raise SystemExit(1) from None


def _cmd_replay(args: argparse.Namespace) -> int:
    from bot.replay import replay
    from engine.rules import Rules

    rules = _load_rules_or_exit(args.rules)
    assert isinstance(rules, Rules)
    path = Path(args.file)
    if not path.is_file():
        sys.stderr.write(f"error: {path}: no such file\n")
        return 2
    return replay(path, rules, explain=args.explain, fmt=args.format)


def _cmd_connectors(args: argparse.Namespace) -> int:
    from connectors.registry import CONNECTORS

    width = max(len(name) for name in CONNECTORS)
    sys.stdout.write(f"{'connector':<{width}}  {'endpoint':<{width + 10}}  secret / verification\n")
    for name, connector in sorted(CONNECTORS.items()):
        sys.stdout.write(
            f"{name:<{width}}  /webhooks/{name:<{width}}  "
            f"{connector.secret_env}: {connector.verification}\n"
        )
    return 0


def _cmd_db_upgrade(args: argparse.Namespace) -> int:
    from storage.db import Database

    settings = Settings.from_env()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    database = Database(settings.resolved_database_url)
    database.migrate()
    database.dispose()
    sys.stdout.write("database schema is up to date\n")
    return 0


def _cmd_digest(args: argparse.Namespace) -> int:
    from datetime import date

    from bot.digest import preview_or_post, render_adaptive_card, render_blocks, report_json
    from bot.pipeline import utc_now
    from engine.rules import Rules
    from storage.db import Database

    settings = Settings.from_env()
    rules = _load_rules_or_exit(args.rules or str(settings.rules_path))
    assert isinstance(rules, Rules)
    try:
        day = date.fromisoformat(args.date) if args.date else None
    except ValueError:
        sys.stderr.write(f"error: --date {args.date!r} is not a date like 2026-03-10\n")
        return 2
    renderers = {
        "json": report_json,
        "blocks": lambda report: json.dumps(render_blocks(report), indent=2, ensure_ascii=False),
        "card": lambda report: json.dumps(
            render_adaptive_card(report), indent=2, ensure_ascii=False
        ),
    }
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    database = Database(settings.resolved_database_url)
    try:
        database.migrate()
        kwargs = {"render": renderers[args.format]} if args.format in renderers else {}
        status, output = preview_or_post(
            database,
            rules,
            args.team,
            day=day,
            post=args.post,
            force=args.force,
            base_url=settings.base_url,
            now=utc_now(),
            **kwargs,
        )
    finally:
        database.dispose()
    (sys.stdout if status == 0 else sys.stderr).write(output + "\n")
    return status


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the `escalations` command."""
    parser = argparse.ArgumentParser(
        prog="escalations",
        description="Watch chatbot conversations and hand them to humans in Slack or Teams.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="run the service (webhooks, chat surfaces, workers)")
    serve.add_argument("--demo", action="store_true", help="feed bundled example conversations")
    serve.add_argument("--host", help="listen address (default ESCALATIONS_HOST or 127.0.0.1)")
    serve.add_argument("--port", type=int, help="listen port (default ESCALATIONS_PORT or 8080)")
    serve.add_argument("--rules", help="rules file (default ESCALATIONS_RULES or rules.yaml)")
    serve.add_argument("-v", "--verbose", action="store_true")
    serve.set_defaults(handler=_cmd_serve)

    demo = commands.add_parser("demo", help="same as `serve --demo`")
    demo.add_argument("--host")
    demo.add_argument("--port", type=int)
    demo.add_argument("--rules")
    demo.add_argument("-v", "--verbose", action="store_true")
    demo.set_defaults(handler=_cmd_serve, demo=True)

    rules = commands.add_parser("rules", help="work with rules files")
    rules_commands = rules.add_subparsers(dest="rules_command", required=True, metavar="ACTION")
    check = rules_commands.add_parser("check", help="validate a rules file")
    check.add_argument("file", nargs="?", default="rules.yaml")
    check.set_defaults(handler=_cmd_rules_check)

    replay = commands.add_parser("replay", help="run recorded conversations through the rules")
    replay.add_argument("file", help="JSONL file: one generic-format conversation per line")
    replay.add_argument("--rules", default="rules.yaml")
    replay.add_argument("--explain", action="store_true", help="score after every event")
    replay.add_argument("--format", choices=("text", "json"), default="text")
    replay.set_defaults(handler=_cmd_replay)

    evaluate = commands.add_parser(
        "eval", help="precision/recall of the rules on labelled conversations", add_help=False
    )
    evaluate.set_defaults(handler=None, wants_rest=True)

    connectors = commands.add_parser("connectors", help="list the installed connectors")
    connectors.set_defaults(handler=_cmd_connectors)

    digest = commands.add_parser(
        "digest", help="print a team's hand-off digest for a past period; --post sends it"
    )
    digest.add_argument("--team", required=True, help="the team, as named in rules.yaml")
    digest.add_argument(
        "--date", help="the day the digest is (or was) posted, YYYY-MM-DD (default: the latest)"
    )
    digest.add_argument("--post", action="store_true", help="post it, unless already posted")
    digest.add_argument("--force", action="store_true", help="with --post: post it again")
    digest.add_argument("--format", choices=("text", "json", "blocks", "card"), default="text")
    digest.add_argument("--rules", help="rules file (default ESCALATIONS_RULES or rules.yaml)")
    digest.set_defaults(handler=_cmd_digest)

    db = commands.add_parser("db", help="database administration")
    db_commands = db.add_subparsers(dest="db_command", required=True, metavar="ACTION")
    upgrade = db_commands.add_parser("upgrade", help="create or migrate the schema")
    upgrade.set_defaults(handler=_cmd_db_upgrade)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `escalations` command."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments[:1] == ["eval"]:
        from bot.evaluate import main as evaluate_main

        return evaluate_main(arguments[1:])
    parser = build_parser()
    args = parser.parse_args(arguments)
    try:
        return int(args.handler(args))
    except SettingsError as error:
        sys.stderr.write(f"error: {error}\n")
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
