"""Counted attempts in a time window (bind guesses, login starts, shared turns)."""

from .. import clock
from .db import transaction


def take_attempt(db, limits, window, now=None):
    """Count one attempt against each key of ``limits`` (``{key: limit}``), all or none.

    Returns the keys already at their limit in the current window (then nothing is
    counted), or an empty list when the attempt was counted. Check and count are one write
    transaction with the counters' rows locked, taken before the attempt is made, so
    parallel attempts from any number of workers and hosts never get more than ``limit``.
    """
    now = now or clock.now()
    keys = sorted(limits)  # one lock order for everyone: no deadlocks
    with transaction(db):
        counts = {}
        for key in keys:
            # The row must exist before it can be locked.
            db.execute(
                "INSERT INTO login_failures (key, failures, window_start) "
                "VALUES (:key, 0, :now) ON CONFLICT (key) DO NOTHING",
                {"key": key, "now": now},
            )
            row = db.one(
                f"SELECT failures, window_start FROM login_failures WHERE key = :key"
                f"{db.for_update}",
                {"key": key},
            )
            counts[key] = 0 if row["window_start"] < now - window else row["failures"]
        spent = [key for key in keys if counts[key] >= limits[key]]
        if spent:
            return spent
        for key in keys:
            db.execute(
                "UPDATE login_failures SET "
                "failures = CASE WHEN window_start < :start THEN 1 ELSE failures + 1 END, "
                "window_start = CASE WHEN window_start < :start THEN :now ELSE window_start END "
                "WHERE key = :key",
                {"key": key, "start": now - window, "now": now},
            )
    return []


def clear_failures(db, key):
    """Forget the attempts counted for ``key`` (after a success)."""
    with transaction(db):
        db.execute("DELETE FROM login_failures WHERE key = :key", {"key": key})
