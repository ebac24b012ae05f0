"""Connections and write transactions over ``wxsite.engines`` (SQLite or PostgreSQL).

Every query is written once with ``:name`` parameters; the engine adapter runs it on
either database. A read-then-write appends ``db.for_update`` to its SELECT: a row lock on
PostgreSQL, nothing on SQLite (where ``BEGIN IMMEDIATE`` already serializes writers).
"""

import logging
from contextlib import contextmanager

from ..engines import (  # noqa: F401 - the store's error types, re-exported
    BUSY_TIMEOUT,
    BadValue,
    Busy,
    ConfigError,
    Conflict,
    StoreError,
    Unavailable,
    open_engine,
)

log = logging.getLogger("wxsite.store")

#: What any failing database raises (callers catch this, never a driver's types).
Error = StoreError
#: A unique or foreign key that refused a row.
IntegrityError = Conflict


def connect(url_or_path, busy_timeout=BUSY_TIMEOUT):
    """Open one connection to ``url_or_path`` (tools and tests); closing it closes its engine."""
    engine = open_engine(url_or_path, busy_timeout)
    conn = engine.connect()
    close = conn.close

    def close_both():
        close()
        engine.close()

    conn.close = close_both
    return conn


@contextmanager
def transaction(db):
    """Run the block as one write transaction (a savepoint inside another one)."""
    with db.transaction():
        yield db


def ping(db):
    """Return True if the database answers a trivial query."""
    return db.scalar("SELECT 1") == 1


def one(db, sql, params=None):
    """Return the first row of a query as a dict, or None."""
    return db.one(sql, params)


def marks(prefix, values):
    """Return ``(":p0, :p1", {"p0": …})`` for an IN list of ``values``."""
    params = {f"{prefix}{i}": v for i, v in enumerate(values)}
    return ", ".join(f":{k}" for k in params), params
