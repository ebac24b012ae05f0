"""Authorization attempts: Authlib's state cache, plus who finished each one."""

import time

from .db import one, transaction

#: Finished or abandoned attempts are kept this long past their expiry, then pruned.
AUTH_STATE_KEEP = 86400


def put_auth_state(db, key, value, expires_at, now=None):
    """Record a new authorization attempt (Authlib's state data, JSON)."""
    with transaction(db):
        db.execute(
            "INSERT OR REPLACE INTO auth_states (key, value, expires_at) VALUES (?, ?, ?)",
            [key, value, expires_at],
        )
        # Prune old attempts on the way (an index keeps this cheap).
        db.execute(
            "DELETE FROM auth_states WHERE expires_at < ?",
            [(now or time.time()) - AUTH_STATE_KEEP],
        )


def get_auth_state(db, key):
    """Return the authorization attempt stored under ``key``, or None."""
    return one(db, "SELECT * FROM auth_states WHERE key = ?", [key])


def delete_auth_state(db, key):
    """Forget an authorization attempt."""
    with transaction(db):
        db.execute("DELETE FROM auth_states WHERE key = ?", [key])


def claim_auth_state(db, key, now, stale_before):
    """Mark the attempt as being finished; return True for the one caller that wins.

    A claim older than ``stale_before`` (its request died mid-exchange) may be taken over.
    """
    with transaction(db):
        cursor = db.execute(
            "UPDATE auth_states SET claimed_at = ? WHERE key = ? AND wechat_user_id IS NULL "
            "AND (claimed_at IS NULL OR claimed_at < ?)",
            [now, key, stale_before],
        )
    return cursor.rowcount == 1


def finish_auth_state(db, key, wechat_user_id):
    """Record who the attempt logged in."""
    with transaction(db):
        db.execute("UPDATE auth_states SET wechat_user_id = ? WHERE key = ?", [wechat_user_id, key])


def release_auth_state(db, key):
    """Give the attempt back after a failed exchange, so a second delivery may try."""
    with transaction(db):
        db.execute(
            "UPDATE auth_states SET claimed_at = NULL WHERE key = ? AND wechat_user_id IS NULL",
            [key],
        )
