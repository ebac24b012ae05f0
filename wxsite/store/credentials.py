"""The shared store of global credentials and their fetch lease, in the database."""

from contextlib import contextmanager

from .. import clock
from ..wechat.credentials import Credential
from .db import open_engine, transaction

_ENGINES = {}


def _engine_for(url):
    # One engine per database and process, however many stores are made for it.
    engine = _ENGINES.get(url)
    if engine is None or engine.closed:
        engine = _ENGINES[url] = open_engine(url)
    return engine


class CredentialStore:
    """Database-backed shared store for global credentials and their fetch lease.

    Lends a connection per operation from the site's engine: it is used from any thread
    of any worker, outside request contexts, and must never hold a lock across WeChat's
    HTTP call. Every read-then-write is one conditional UPDATE, atomic on both engines.
    ``lease_owner`` stays on the row after ``lease_until`` passes and only changes when
    another holder acquires: that is how a holder whose lease expired learns that it may
    no longer save. The re-check window of a kind lives on a row of its own
    (``<kind>:recheck``, its ``expires_at`` is the window's end, it never has a value), so
    that no migration is needed and ``statuses`` never shows it; so do the forced refreshes of a
    kind (``<kind>:force``), which ``forget`` keeps: they count WeChat's quota, not a value.
    """

    def __init__(self, engine):
        # Tools and tests may pass the database's path or URL instead of an open engine.
        self.engine = _engine_for(engine) if isinstance(engine, str) else engine

    @contextmanager
    def _db(self):
        with self.engine.connection() as db:
            yield db

    @staticmethod
    def _ensure_row(db, key):
        db.execute(
            "INSERT INTO credentials (appid, kind) VALUES (:appid, :kind) "
            "ON CONFLICT (appid, kind) DO NOTHING",
            key,
        )

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
            self._ensure_row(db, key)
            taken = db.execute(
                "UPDATE credentials SET lease_owner = :owner, lease_until = :until "
                "WHERE appid = :appid AND kind = :kind "
                "AND (lease_owner IS NULL OR lease_until < :now)",
                {**key, "owner": owner, "until": until, "now": now},
            )
        return taken == 1

    def renew(self, appid, kind, owner, now, until):
        """Extend ``owner``'s lease to ``until``; return False if another holder took it."""
        with self._db() as db, transaction(db):
            renewed = db.execute(
                "UPDATE credentials SET lease_until = :until "
                "WHERE appid = :appid AND kind = :kind AND lease_owner = :owner",
                {"until": until, "appid": appid, "kind": kind, "owner": owner},
            )
        return renewed == 1

    def save(self, appid, kind, owner, value, expires_at):
        """Store a fresh value and release the lease; False if another holder took it over."""
        with self._db() as db, transaction(db):
            saved = db.execute(
                "UPDATE credentials SET value = :value, expires_at = :expires, "
                "lease_owner = NULL, lease_until = NULL, error_code = NULL, error_until = 0, "
                "updated_at = :now WHERE appid = :appid AND kind = :kind AND lease_owner = :owner",
                {
                    "value": value,
                    "expires": expires_at,
                    "now": clock.now(),
                    "appid": appid,
                    "kind": kind,
                    "owner": owner,
                },
            )
        return saved == 1

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

    def note_failure(self, appid, kind, error_code, error_until):
        """Remember a failure of a call made without a lease (the code exchange)."""
        key = {"appid": appid, "kind": kind}
        with self._db() as db, transaction(db):
            self._ensure_row(db, key)
            db.execute(
                "UPDATE credentials SET error_code = :code, error_until = :until "
                "WHERE appid = :appid AND kind = :kind",
                {**key, "code": error_code, "until": error_until},
            )

    def invalidate(self, appid, kind, value):
        """Drop ``value`` if it is still the stored one (a newer value is kept)."""
        with self._db() as db, transaction(db):
            db.execute(
                "UPDATE credentials SET value = NULL, expires_at = 0 "
                "WHERE appid = :appid AND kind = :kind AND value = :value",
                {"appid": appid, "kind": kind, "value": value},
            )

    def recheck(self, appid, kind, value, now, until):
        """Open a re-check window until ``until`` and drop ``value``; False while one is open."""
        # One transaction for both: no worker reads the refused value once another one won
        # the window, so every worker ends up waiting for the one re-fetch.
        window = {"appid": appid, "kind": kind + ":recheck"}
        with self._db() as db:
            ends = db.scalar(
                "SELECT expires_at FROM credentials WHERE appid = :appid AND kind = :kind",
                window,
            )
            if ends is not None and ends > now:
                return False  # the common case under a flood of reports: no write at all
            with transaction(db):
                self._ensure_row(db, window)
                opened = db.execute(
                    "UPDATE credentials SET expires_at = :until "
                    "WHERE appid = :appid AND kind = :kind AND expires_at <= :now",
                    {**window, "until": until, "now": now},
                )
                if opened != 1:
                    return False
                db.execute(
                    "UPDATE credentials SET value = NULL, expires_at = 0 "
                    "WHERE appid = :appid AND kind = :kind AND value = :value",
                    {"appid": appid, "kind": kind, "value": value},
                )
        return True

    def claim_force(self, appid, kind, now, spacing, daily, day_end):
        """Count one forced refresh if ``spacing`` s passed and fewer than ``daily`` today."""
        # The count lives on a row of its own (``<kind>:force``): ``expires_at`` is the last
        # forced refresh, ``error_code`` the count, ``error_until`` the end of its China day.
        # One conditional UPDATE, so operators on two hosts are limited together.
        key = {"appid": appid, "kind": kind + ":force"}
        with self._db() as db, transaction(db):
            self._ensure_row(db, key)
            claimed = db.execute(
                "UPDATE credentials SET expires_at = :now, error_until = :day_end, "
                "error_code = CASE WHEN error_until <= :now THEN 1 "
                "ELSE COALESCE(error_code, 0) + 1 END "
                "WHERE appid = :appid AND kind = :kind AND expires_at <= :after "
                "AND (error_until <= :now OR COALESCE(error_code, 0) < :daily)",
                {**key, "now": now, "after": now - spacing, "daily": daily, "day_end": day_end},
            )
        return claimed == 1

    def forget(self, appid, kind):
        """Delete everything stored for ``kind``: value, lease, failure, re-check window."""
        with self._db() as db, transaction(db):
            db.execute(
                "DELETE FROM credentials WHERE appid = :appid AND kind IN (:kind, :window)",
                {"appid": appid, "kind": kind, "window": kind + ":recheck"},
            )
