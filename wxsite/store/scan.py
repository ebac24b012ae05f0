"""Desktop logins by scanning: tickets, the phone's decision, the desktop's one redemption."""

from .. import clock
from .db import transaction

PENDING, CONFIRMED, CANCELLED, REDEEMED = "pending", "confirmed", "cancelled", "redeemed"
#: Scanned through the ticket's parametric QR code (follow to log in), not yet decided:
#: only the openid that scanned may confirm it.
SCANNED = "scanned"
#: An unexpired ticket the person with ``:openid`` may act on: pending, or scanned by them.
_OPEN = (
    "expires_at > :now AND (state = :pending OR (state = :scanned AND scanned_openid = :openid))"
)


def _open_to(openid, now):
    return {"now": now, "pending": PENDING, "scanned": SCANNED, "openid": openid}


def create_scan(db, ticket, browser_key, desktop, lifetime, now=None, scene=None):
    """Record a new ticket for the desktop browser holding ``browser_key``'s secret
    (``scene``: the scene of its parametric QR code, if it has one)."""
    now = now or clock.now()
    with transaction(db):
        db.execute(
            "INSERT INTO scan_logins "
            "(ticket, browser_key, state, desktop, created_at, expires_at, scene) "
            "VALUES (:ticket, :key, :state, :desktop, :now, :expires, :scene)",
            {
                "ticket": ticket,
                "key": browser_key,
                "state": PENDING,
                "desktop": desktop,
                "now": now,
                "expires": now + lifetime,
                "scene": scene,
            },
        )


def scan_by_scene(db, scene, openid, now=None):
    """Mark the unexpired ticket of ``scene`` scanned by ``openid``; return its ticket, or None.

    A pending ticket, or one this openid already scanned (a second scan, not WeChat's retry),
    qualifies; one scanned by someone else, decided or expired does not (nothing changes).
    Runs in the caller's transaction when there is one (the push's delivery record).
    """
    now = now or clock.now()
    with transaction(db):
        marked = db.execute(
            "UPDATE scan_logins SET state = :scanned, scanned_openid = :openid "
            f"WHERE scene = :scene AND {_OPEN}",
            {"scene": scene, **_open_to(openid, now)},
        )
        if marked != 1:
            return None
        return db.scalar("SELECT ticket FROM scan_logins WHERE scene = :scene", {"scene": scene})


def get_scan(db, ticket):
    """Return the ticket's row, or None."""
    return db.one("SELECT * FROM scan_logins WHERE ticket = :ticket", {"ticket": ticket})


def decide_scan(db, ticket, state, wechat_user_id, openid, now=None):
    """Confirm or cancel an unexpired ticket, pending or scanned by ``openid`` (the deciding
    phone's); return True for the one decision taken."""
    now = now or clock.now()
    with transaction(db):
        decided = db.execute(
            "UPDATE scan_logins SET state = :state, wechat_user_id = :user, decided_at = :now "
            f"WHERE ticket = :ticket AND {_OPEN}",
            {"state": state, "user": wechat_user_id, "ticket": ticket, **_open_to(openid, now)},
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
