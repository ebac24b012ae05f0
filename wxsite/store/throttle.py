"""Counted attempts in a time window (bind guesses, login starts, shared turns)."""

import time

from .db import one, transaction


def take_attempt(db, limits, window, now=None):
    """Count one attempt against each key of ``limits`` (``{key: limit}``), all or none.

    Returns the keys already at their limit in the current window (then nothing is
    counted), or an empty list when the attempt was counted. Check and count are one write
    transaction, taken before the attempt is made, so parallel attempts from any number of
    workers never get more than ``limit`` tries.
    """
    now = now or time.time()
    with transaction(db):
        spent = [
            key for key, limit in limits.items() if _count_in_window(db, key, window, now) >= limit
        ]
        if spent:
            return spent
        for key in limits:
            db.execute(
                "INSERT INTO login_failures (key, failures, window_start) VALUES (?, 1, ?) "
                "ON CONFLICT(key) DO UPDATE SET "
                "failures = CASE WHEN window_start < ? THEN 1 ELSE failures + 1 END, "
                "window_start = CASE WHEN window_start < ? THEN ? ELSE window_start END",
                [key, now, now - window, now - window, now],
            )
    return []


def _count_in_window(db, key, window, now):
    row = one(db, "SELECT failures, window_start FROM login_failures WHERE key = ?", [key])
    if not row or row["window_start"] < now - window:
        return 0
    return row["failures"]


def clear_failures(db, key):
    """Forget the attempts counted for ``key`` (after a success)."""
    with transaction(db):
        db.execute("DELETE FROM login_failures WHERE key = ?", [key])
