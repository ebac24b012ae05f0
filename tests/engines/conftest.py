"""Fixtures for the engine tests: every test that takes ``engine`` runs on SQLite and PostgreSQL."""

import pytest

from pgserver import pg_server, pg_url  # noqa: F401 - fixtures, re-exported for this folder
from wxsite.engines import open_engine

#: Short lock waits, so the Busy tests take a fraction of a second.
BUSY_TIMEOUT = 0.5


@pytest.fixture(params=["sqlite", "postgresql"])
def engine_url(request, tmp_path):
    """A fresh database: a SQLite file, or a new database on the session's PostgreSQL server."""
    if request.param == "sqlite":
        return str(tmp_path / "engine.sqlite3")
    # Looked up only here, so a SQLite-only run (-k sqlite) never starts PostgreSQL.
    return request.getfixturevalue("pg_url")


@pytest.fixture
def engine(engine_url):
    """An engine on a fresh database, with short lock timeouts."""
    engine = open_engine(engine_url, busy_timeout=BUSY_TIMEOUT)
    yield engine
    engine.close()
