"""The shared store of global credentials and their fetch lease, in the database."""

import time
from contextlib import contextmanager

from ..wechat.credentials import Credential
from .db import open_engine, transaction


class CredentialStore:
    """Database-backed shared store for global credentials and their fetch lease.

    Lends a connection per operation from the site's engine: it is used from any thread of
    any worker, outside request contexts, and must never hold a lock across WeChat's HTTP
    call. Every read-then-write is one conditional UPDATE, atomic on both engines.
    """

    def __init__(self, engine):
        # Tools and tests may pass the database's path or URL instead of an open engine.
        self.engine = open_engine(engine) if isinstance(engine, str) else engine

    @contextmanager
    def _db(self):
        with self.engine.connection() as db:
            yield db

    def read(self, appid, kind):
        """Return the stored ``Credential`` or None."""
        with self._db() as db:
            row = db.one(
                "SELECT value, expires_at, error_code, error_until FROM credentials "
                "WHERE appid = :appid AND kind = :kind",
                {"appid": appid, "kind": kind},
            )
        return Credential(**row) if row else None

    def acquire(self, appid, kind, owner, now, until):
        """Take the fetch lease if nobody holds an unexpired one; return True if taken."""
        key = {"appid": appid, "kind": kind}
        with self._db() as db, transaction(db):
            db.execute(
                "INSERT INTO credentials (appid, kind) VALUES (:appid, :kind) "
                "ON CONFLICT (appid, kind) DO NOTHING",
                key,
            )
            taken = db.execute(
                "UPDATE credentials SET lease_owner = :owner, lease_until = :until "
                "WHERE appid = :appid AND kind = :kind "
                "AND (lease_owner IS NULL OR lease_until < :now)",
                {**key, "owner": owner, "until": until, "now": now},
            )
        return taken == 1

    def save(self, appid, kind, owner, value, expires_at):
        """Store a fresh value and release the lease."""
        with self._db() as db, transaction(db):
            db.execute(
                "UPDATE credentials SET value = :value, expires_at = :expires, "
                "lease_owner = NULL, lease_until = NULL, error_code = NULL, error_until = 0, "
                "updated_at = :now WHERE appid = :appid AND kind = :kind",
                {
                    "value": value,
                    "expires": expires_at,
                    "now": time.time(),
                    "appid": appid,
                    "kind": kind,
                },
            )

    def release(self, appid, kind, owner):
        """Give the lease back without a new value."""
        with self._db() as db, transaction(db):
            db.execute(
                "UPDATE credentials SET lease_owner = NULL, lease_until = NULL "
                "WHERE appid = :appid AND kind = :kind AND lease_owner = :owner",
                {"appid": appid, "kind": kind, "owner": owner},
            )

    def fail(self, appid, kind, owner, error_code, error_until):
        """Release the lease and remember a failure other workers should not repeat."""
        with self._db() as db, transaction(db):
            db.execute(
                "UPDATE credentials SET lease_owner = NULL, lease_until = NULL, "
                "error_code = :code, error_until = :until "
                "WHERE appid = :appid AND kind = :kind AND lease_owner = :owner",
                {
                    "code": error_code,
                    "until": error_until,
                    "appid": appid,
                    "kind": kind,
                    "owner": owner,
                },
            )

    def invalidate(self, appid, kind, value):
        """Drop ``value`` if it is still the stored one (a newer value is kept)."""
        with self._db() as db, transaction(db):
            db.execute(
                "UPDATE credentials SET value = NULL, expires_at = 0 "
                "WHERE appid = :appid AND kind = :kind AND value = :value",
                {"appid": appid, "kind": kind, "value": value},
            )

    def statuses(self):
        """Return ``{(appid, kind): expires_at}`` of stored values (never the values)."""
        with self._db() as db:
            rows = db.query(
                "SELECT appid, kind, expires_at FROM credentials WHERE value IS NOT NULL"
            )
        return {(r["appid"], r["kind"]): r["expires_at"] for r in rows}
