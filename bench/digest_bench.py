"""How long one digest takes over a year of history: seed 1,000,000 escalations, time the digest.

    python -m bench.digest_bench [--rows 1000000] [--postgres URL]

Rows are written with multi-row INSERTs straight into the tables (no engine, no ORM objects),
spread evenly over 365 days across 4 teams, a third claimed, a quarter resolved. The digest of
one team's busiest-looking day is then computed several times and the times are printed.
PostgreSQL is measured too when a URL is given (or the local server answers).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import insert, text
from sqlalchemy.exc import OperationalError

from bot.digest import Period, build_report
from storage import tables
from storage.db import Database

START = datetime(2025, 1, 1, tzinfo=UTC)
TEAMS = ("support", "billing", "enterprise", "leads")
BATCH = 5_000


def seed(database: Database, rows: int) -> float:
    """Insert `rows` conversations and escalations; returns the seconds it took."""
    began = time.perf_counter()
    step = timedelta(days=365) / rows
    reasons = [{"signal": "fallbacks", "points": 10.0, "text": "fallbacks", "event_ids": []}]
    with database.session() as session:
        connection = session.connection()
        for first in range(0, rows, BATCH):
            conversations, escalations = [], []
            for index in range(first, min(rows, first + BATCH)):
                opened = START + step * index
                claimed = opened + timedelta(seconds=30 + index % 900) if index % 3 else None
                resolved = index % 4 == 0 and claimed is not None
                cid = f"c{index}"
                conversations.append(
                    {
                        "id": cid,
                        "platform": "generic",
                        "status": "ended",
                        "score": 0.0,
                        "first_event_at": opened,
                        "last_event_at": opened,
                        "created_at": opened,
                        "updated_at": opened,
                    }
                )
                escalations.append(
                    {
                        "conversation_id": cid,
                        "status": "resolved" if resolved else "claimed" if claimed else "expired",
                        "level": ("escalate", "urgent")[index % 2],
                        "score": float(50 + index % 50),
                        "reasons": reasons,
                        "team": TEAMS[index % len(TEAMS)],
                        "opened_at": opened,
                        "claimed_at": claimed,
                        "claimed_by": f"U{index % 7}" if claimed else None,
                        "closed_at": claimed + timedelta(minutes=20)
                        if resolved and claimed
                        else None,
                        "updated_at": opened,
                    }
                )
            connection.execute(insert(tables.conversations), conversations)
            connection.execute(insert(tables.escalations), escalations)
    if database.dialect == "postgresql":
        with database.engine.begin() as connection:
            connection.execute(text("ANALYZE"))
    return time.perf_counter() - began


def time_digest(database: Database, repeats: int = 5) -> list[float]:
    """Seconds per digest of one team and one day, in the middle of the year."""
    end = START + timedelta(days=200)
    period = Period(
        "support", "Europe/Berlin", end - timedelta(days=1), end, end - timedelta(days=2)
    )
    times = []
    for _ in range(repeats):
        began = time.perf_counter()
        with database.session(read_only=True) as session:
            report = build_report(session, period, "https://escalations.example.com")
        times.append(time.perf_counter() - began)
    print(f"  digest: {report.handoffs} hand-offs in the day, {report.claim_count} claimed")
    return times


def measure(name: str, database: Database, rows: int) -> None:
    """Seed and time one database, printing the figures."""
    database.migrate()
    seconds = seed(database, rows)
    print(f"{name}: seeded {rows:,} escalations in {seconds:.1f} s ({rows / seconds:,.0f}/s)")
    times = time_digest(database)
    print(
        f"{name}: digest median {statistics.median(times) * 1000:.1f} ms, "
        f"max {max(times) * 1000:.1f} ms over {len(times)} runs"
    )


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument(
        "--postgres", default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
    )
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as directory:
        database = Database(f"sqlite:///{Path(directory) / 'bench.db'}")
        try:
            measure("sqlite", database, args.rows)
        finally:
            database.dispose()
    admin = Database(args.postgres)
    name = f"escalations_bench_{int(time.time())}"
    try:
        with admin.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    except OperationalError as error:
        print(f"postgresql: skipped ({error.orig})", file=sys.stderr)
        return 0
    database = Database(admin.url.set(database=name).render_as_string(hide_password=False))
    try:
        measure("postgresql", database, args.rows)
    finally:
        database.dispose()
        with admin.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        admin.dispose()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
