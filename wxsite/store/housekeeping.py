"""Purging rows nobody will read again."""

from .. import clock
from .auth_states import AUTH_STATE_KEEP
from .db import transaction
from .jobs import KEEP_DONE

#: How long rows are kept after they stop mattering.
KEEP_NOTIFICATIONS = 30 * 86400  # WeChat retries for about a day; repeats beyond are ignored
KEEP_REVOKED_LOGINS = 86400


def purge_expired(db, login_max_age, now=None):
    """Delete rows nobody will read again; return ``{table: rows deleted}``."""
    now = now or clock.now()
    deleted = {}
    with transaction(db):
        for table, where, params in (
            ("auth_states", "expires_at < :a", {"a": now - AUTH_STATE_KEEP}),
            (
                "logins",
                "created_at < :a OR revoked_at < :b",
                {"a": now - login_max_age, "b": now - KEEP_REVOKED_LOGINS},
            ),
            ("deliveries", "received_at < :a", {"a": now - KEEP_NOTIFICATIONS}),
            ("login_failures", "window_start < :a", {"a": now - 86400}),
            ("scan_logins", "expires_at < :a", {"a": now - 86400}),
            # Finished jobs: a done one after a week; failed ones stay until run again.
            ("jobs", "state = 'done' AND updated_at < :a", {"a": now - KEEP_DONE}),
        ):
            deleted[table] = db.execute(f"DELETE FROM {table} WHERE {where}", params)
    return deleted
