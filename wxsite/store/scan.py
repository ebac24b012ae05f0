"""Desktop logins by scanning: tickets, the phone's decision, the desktop's one redemption."""

from .. import clock
from .db import transaction

PENDING, CONFIRMED, CANCELLED, REDEEMED = "pending", "confirmed", "cancelled", "redeemed"


def create_scan(db, ticket, browser_key, desktop, lifetime, now=None):
    """Record a new ticket for the desktop browser holding ``browser_key``'s secret."""
    now = now or clock.now()
    with transaction(db):
        db.execute(
            "INSERT INTO scan_logins (ticket, browser_key, state, desktop, created_at, expires_at) "
            "VALUES (:ticket, :key, :state, :desktop, :now, :expires)",
            {
                "ticket": ticket,
                "key": browser_key,
                "state": PENDING,
                "desktop": desktop,
                "now": now,
                "expires": now + lifetime,
            },
        )


def get_scan(db, ticket):
    """Return the ticket's row, or None."""
    return db.one("SELECT * FROM scan_logins WHERE ticket = :ticket", {"ticket": ticket})


def decide_scan(db, ticket, state, wechat_user_id, now=None):
    """Confirm or cancel a pending, unexpired ticket; return True for the one decision taken."""
    now = now or clock.now()
    with transaction(db):
        decided = db.execute(
            "UPDATE scan_logins SET state = :state, wechat_user_id = :user, decided_at = :now "
            "WHERE ticket = :ticket AND state = :pending AND expires_at > :now",
            {
                "state": state,
                "user": wechat_user_id,
                "now": now,
                "ticket": ticket,
                "pending": PENDING,
            },
        )
    return decided == 1


def redeem_scan(db, ticket, browser_key, lifetime, now=None):
    """Turn a confirmed ticket into its login once, for its own desktop, within ``lifetime``
    seconds of the confirmation; return the user id (None: refused, nothing changed)."""
    now = now or clock.now()
    with transaction(db):
        row = db.one(
            f"SELECT * FROM scan_logins WHERE ticket = :ticket{db.for_update}", {"ticket": ticket}
        )
        if (
            row is None
            or row["browser_key"] != browser_key
            or row["state"] != CONFIRMED
            or row["decided_at"] <= now - lifetime
        ):
            return None
        db.execute(
            "UPDATE scan_logins SET state = :redeemed WHERE ticket = :ticket",
            {"redeemed": REDEEMED, "ticket": ticket},
        )
    return row["wechat_user_id"]
