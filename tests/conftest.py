"""Database fixtures every test package can use.

- `database`: a migrated, empty `Database`, once on SQLite and once on PostgreSQL.
- `sqlite_database` / `postgres_database`: one backend only.
- `postgres_url_factory`: a fresh, empty PostgreSQL database per call (for multi-process tests).

PostgreSQL comes from ESCALATIONS_TEST_POSTGRES_URL (an admin URL, default the local server).
When it is unreachable the PostgreSQL tests are skipped, unless ESCALATIONS_REQUIRE_POSTGRES=1.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.pool import NullPool

from storage import tables
from storage.db import Database, normalize_url, redact_url

POSTGRES_URL_ENV = "ESCALATIONS_TEST_POSTGRES_URL"
REQUIRE_POSTGRES_ENV = "ESCALATIONS_REQUIRE_POSTGRES"
DEFAULT_POSTGRES_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


def _admin_url() -> str:
    return normalize_url(os.environ.get(POSTGRES_URL_ENV) or DEFAULT_POSTGRES_ADMIN_URL)


def _quote(name: str) -> str:
    # Names are generated here from hex digits only; quoting keeps them exact anyway.
    return '"' + name.replace('"', '""') + '"'


@pytest.fixture(scope="session")
def postgres_url_factory() -> Iterator[Callable[[], str]]:
    """Call it to get the URL of a new, empty PostgreSQL database; all are dropped at the end."""
    admin_url = _admin_url()
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    try:
        with admin.connect() as connection:
            connection.execute(text("SELECT 1"))
    except OperationalError as error:
        admin.dispose()
        reason = f"PostgreSQL at {redact_url(admin_url)} is not reachable: {error.orig}"
        if os.environ.get(REQUIRE_POSTGRES_ENV) == "1":
            pytest.fail(f"{reason} (and {REQUIRE_POSTGRES_ENV}=1)")
        pytest.skip(reason)
    created: list[str] = []

    def create() -> str:
        name = f"escalations_test_{secrets.token_hex(6)}"
        with admin.connect() as connection:
            connection.execute(text(f"CREATE DATABASE {_quote(name)}"))
        created.append(name)
        return make_url(admin_url).set(database=name).render_as_string(hide_password=False)

    yield create
    with admin.connect() as connection:
        for name in created:
            # Connections a test leaked (or a killed worker left) must not keep the drop waiting.
            connection.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = :name AND pid <> pg_backend_pid()"
                ),
                {"name": name},
            )
            connection.execute(text(f"DROP DATABASE IF EXISTS {_quote(name)}"))
    admin.dispose()


@pytest.fixture(scope="session")
def _postgres_session_database(
    postgres_url_factory: Callable[[], str],
) -> Iterator[Database]:
    database = Database(postgres_url_factory())
    database.migrate()
    yield database
    database.dispose()


@pytest.fixture
def postgres_database(_postgres_session_database: Database) -> Iterator[Database]:
    """A migrated PostgreSQL database with every table empty (identities restarted)."""
    database = _postgres_session_database
    names = ", ".join(
        _quote(table.name) for table in tables.ALL_TABLES if table is not tables.schema_version
    )
    with database.engine.begin() as connection:
        connection.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
    yield database
    # A test may dispose the engine or leave pooled connections behind; start the next clean.
    database.dispose()


@pytest.fixture
def sqlite_database(tmp_path: Path) -> Iterator[Database]:
    """A migrated SQLite database in a file of its own."""
    database = Database(f"sqlite:///{tmp_path / 'escalations.db'}")
    database.migrate()
    yield database
    database.dispose()


@pytest.fixture(
    params=[
        pytest.param("sqlite"),
        pytest.param("postgres", marks=pytest.mark.postgres),
    ]
)
def database(request: pytest.FixtureRequest) -> Database:
    """A migrated, empty database: each test using it runs on SQLite and on PostgreSQL."""
    fixture = "sqlite_database" if request.param == "sqlite" else "postgres_database"
    result = request.getfixturevalue(fixture)
    assert isinstance(result, Database)
    return result
