"""Connections and write transactions: the one place that knows the database engine."""

import logging
import sqlite3
from contextlib import contextmanager

import sqlite_utils

log = logging.getLogger("wxsite.store")

#: What a failing database raises (callers catch this, not the driver's types).
Error = sqlite3.Error
#: A unique or foreign key that refused a row.
IntegrityError = sqlite3.IntegrityError

#: How long a connection waits for another writer before "database is locked".
BUSY_TIMEOUT = 5.0


def connect(path, busy_timeout=BUSY_TIMEOUT):
    """Open the database at ``path`` in autocommit mode with WAL-friendly pragmas."""
    conn = sqlite3.connect(
        path, timeout=busy_timeout, isolation_level=None, check_same_thread=False
    )
    conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute("PRAGMA synchronous = NORMAL")
    return sqlite_utils.Database(conn, execute_plugins=False)


@contextmanager
def transaction(db):
    """Run the block as one write transaction holding the write lock from the start.

    Inside another ``transaction`` it joins the outer one, so a caller can make several
    store calls commit (or roll back) together.
    """
    if db.conn.in_transaction:
        yield db
        return
    db.execute("BEGIN IMMEDIATE")
    try:
        yield db
    except BaseException:
        db.conn.rollback()
        raise
    db.execute("COMMIT")


def ping(db):
    """Return True if the database answers a trivial query."""
    return db.execute("SELECT 1").fetchone()[0] == 1


def one(db, sql, params=()):
    """Return the first row of a query as a dict, or None."""
    rows = list(db.query(sql, params))
    return rows[0] if rows else None
