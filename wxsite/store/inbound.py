"""What WeChat sends the site: deliveries applied once, and follow state from pushes."""

from .. import clock
from .db import transaction


def record_delivery(db, key, kind, now=None):
    """Record a delivery; return True the first time, False for a repeat.

    Call it inside the transaction that applies the delivery: a failure then leaves
    neither, and WeChat's retry applies it.
    """
    with transaction(db):
        added = db.execute(
            "INSERT INTO deliveries (key, kind, received_at) VALUES (:key, :kind, :now) "
            "ON CONFLICT (key) DO NOTHING",
            {"key": key, "kind": kind, "now": now or clock.now()},
        )
    return added == 1


def set_follow(db, appid, openid, follows, changed_at):
    """Record that ``openid`` follows (or not) since ``changed_at``; older news changes nothing."""
    with transaction(db):
        db.execute(
            "INSERT INTO followers (appid, openid, follows, changed_at) "
            "VALUES (:appid, :openid, :follows, :at) ON CONFLICT (appid, openid) DO UPDATE SET "
            "follows = excluded.follows, changed_at = excluded.changed_at "
            "WHERE followers.changed_at <= excluded.changed_at",
            {"appid": appid, "openid": openid, "follows": int(bool(follows)), "at": changed_at},
        )


def get_follow(db, appid, openid, since=None):
    """Return True/False if the follow state of ``openid`` is known, else None.

    ``since``: only a state recorded (or pushed) at or after that time counts.
    """
    row = db.one(
        "SELECT follows, changed_at FROM followers WHERE appid = :appid AND openid = :openid",
        {"appid": appid, "openid": openid},
    )
    if row is None or (since is not None and row["changed_at"] < since):
        return None
    return bool(row["follows"])
