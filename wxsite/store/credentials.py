"""The shared store of global credentials and their fetch lease, in the database."""

import time
from contextlib import contextmanager

from ..wechat.credentials import Credential
from .db import BUSY_TIMEOUT, connect, transaction


class CredentialStore:
    """SQLite-backed shared store for global credentials and their fetch lease.

    Opens a short connection per operation: it is used from any thread of any worker,
    outside request contexts, and must never hold a lock across WeChat's HTTP call.
    """

    def __init__(self, path, busy_timeout=BUSY_TIMEOUT):
        self.path = path
        self.busy_timeout = busy_timeout

    @contextmanager
    def _db(self):
        db = connect(self.path, self.busy_timeout)
        try:
            yield db
        finally:
            db.close()

    def read(self, appid, kind):
        """Return the stored ``Credential`` or None."""
        with self._db() as db:
            row = db.execute(
                "SELECT value, expires_at, error_code, error_until FROM credentials "
                "WHERE appid = ? AND kind = ?",
                [appid, kind],
            ).fetchone()
        return Credential(*row) if row else None

    def acquire(self, appid, kind, owner, now, until):
        """Take the fetch lease if nobody holds an unexpired one; return True if taken."""
        with self._db() as db, transaction(db):
            db.execute(
                "INSERT OR IGNORE INTO credentials (appid, kind) VALUES (?, ?)", [appid, kind]
            )
            cursor = db.execute(
                "UPDATE credentials SET lease_owner = ?, lease_until = ? "
                "WHERE appid = ? AND kind = ? AND (lease_owner IS NULL OR lease_until < ?)",
                [owner, until, appid, kind, now],
            )
        return cursor.rowcount == 1

    def save(self, appid, kind, owner, value, expires_at):
        """Store a fresh value and release the lease."""
        with self._db() as db, transaction(db):
            db.execute(
                "UPDATE credentials SET value = ?, expires_at = ?, lease_owner = NULL, "
                "lease_until = NULL, error_code = NULL, error_until = 0, updated_at = ? "
                "WHERE appid = ? AND kind = ?",
                [value, expires_at, time.time(), appid, kind],
            )

    def release(self, appid, kind, owner):
        """Give the lease back without a new value."""
        with self._db() as db, transaction(db):
            db.execute(
                "UPDATE credentials SET lease_owner = NULL, lease_until = NULL "
                "WHERE appid = ? AND kind = ? AND lease_owner = ?",
                [appid, kind, owner],
            )

    def fail(self, appid, kind, owner, error_code, error_until):
        """Release the lease and remember a failure other workers should not repeat."""
        with self._db() as db, transaction(db):
            db.execute(
                "UPDATE credentials SET lease_owner = NULL, lease_until = NULL, "
                "error_code = ?, error_until = ? WHERE appid = ? AND kind = ? AND lease_owner = ?",
                [error_code, error_until, appid, kind, owner],
            )

    def invalidate(self, appid, kind, value):
        """Drop ``value`` if it is still the stored one (a newer value is kept)."""
        with self._db() as db, transaction(db):
            db.execute(
                "UPDATE credentials SET value = NULL, expires_at = 0 "
                "WHERE appid = ? AND kind = ? AND value = ?",
                [appid, kind, value],
            )

    def statuses(self):
        """Return ``{(appid, kind): expires_at}`` of stored values (never the values)."""
        with self._db() as db:
            rows = db.execute(
                "SELECT appid, kind, expires_at FROM credentials WHERE value IS NOT NULL"
            ).fetchall()
        return {(appid, kind): expires for appid, kind, expires in rows}
