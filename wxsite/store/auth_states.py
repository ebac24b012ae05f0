"""Authorization attempts: Authlib's state cache, plus who finished each one."""

from .. import clock
from .db import transaction

#: Finished or abandoned attempts are kept this long past their expiry, then pruned.
AUTH_STATE_KEEP = 86400


def put_auth_state(db, key, value, expires_at, now=None):
    """Record a new authorization attempt (Authlib's state data, JSON)."""
    with transaction(db):
        db.execute(
            "INSERT INTO auth_states (key, value, expires_at) VALUES (:key, :value, :expires) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value, "
            "expires_at = excluded.expires_at, claimed_at = NULL, wechat_user_id = NULL",
            {"key": key, "value": value, "expires": expires_at},
        )
        # Prune old attempts on the way (an index keeps this cheap).
        db.execute(
            "DELETE FROM auth_states WHERE expires_at < :before",
            {"before": (now or clock.now()) - AUTH_STATE_KEEP},
        )


def get_auth_state(db, key):
    """Return the authorization attempt stored under ``key``, or None."""
    return db.one("SELECT * FROM auth_states WHERE key = :key", {"key": key})


def delete_auth_state(db, key):
    """Forget an authorization attempt."""
    with transaction(db):
        db.execute("DELETE FROM auth_states WHERE key = :key", {"key": key})


def claim_auth_state(db, key, now, stale_before):
    """Mark the attempt as being finished; return True for the one caller that wins.

    A claim older than ``stale_before`` (its request died mid-exchange) may be taken over.
    """
    with transaction(db):
        changed = db.execute(
            "UPDATE auth_states SET claimed_at = :now WHERE key = :key "
            "AND wechat_user_id IS NULL AND (claimed_at IS NULL OR claimed_at < :stale)",
            {"now": now, "key": key, "stale": stale_before},
        )
    return changed == 1


def finish_auth_state(db, key, wechat_user_id):
    """Record who the attempt logged in."""
    with transaction(db):
        db.execute(
            "UPDATE auth_states SET wechat_user_id = :user WHERE key = :key",
            {"user": wechat_user_id, "key": key},
        )


def release_auth_state(db, key):
    """Give the attempt back after a failed exchange, so a second delivery may try."""
    with transaction(db):
        db.execute(
            "UPDATE auth_states SET claimed_at = NULL WHERE key = :key AND wechat_user_id IS NULL",
            {"key": key},
        )
