"""WeChat Pay: orders, refunds and the ids of notifications already applied."""

import time

from .db import one, transaction

#: Refund states that hold (or may still hold) money: they count against the order.
#: ABNORMAL is one of them: WeChat accepted it and the money left the merchant, but the
#: payer's account could not take it; it is settled by hand, never by a second refund.
LIVE_REFUNDS = ("PENDING", "PROCESSING", "SUCCESS", "ABNORMAL")
#: Where a refund can go from each state; anything else is an older word arriving late.
#: (FAILED: WeChat refused the request; the same out_refund_no may be sent again.)
REFUND_MOVES = {
    "PENDING": ("PROCESSING", "SUCCESS", "CLOSED", "ABNORMAL", "FAILED"),
    "FAILED": ("PROCESSING", "SUCCESS", "CLOSED", "ABNORMAL", "FAILED"),
    "PROCESSING": ("SUCCESS", "CLOSED", "ABNORMAL"),
    "ABNORMAL": ("SUCCESS", "CLOSED"),
    "SUCCESS": (),
    "CLOSED": (),
}


def create_order(db, out_trade_no, person_id, appid, openid, product, description, amount):
    """Record a new, unpaid order (before asking WeChat, so its notification finds it)."""
    with transaction(db):
        db.execute(
            "INSERT INTO orders (out_trade_no, person_id, appid, openid, product, description, "
            "amount, state, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, 'NOTPAY', ?)",
            [out_trade_no, person_id, appid, openid, product, description, amount, time.time()],
        )


def set_order_prepay(db, out_trade_no, prepay_id):
    """Store the prepay_id WeChat gave the order."""
    with transaction(db):
        db.execute(
            "UPDATE orders SET prepay_id = ? WHERE out_trade_no = ?", [prepay_id, out_trade_no]
        )


def close_order(db, out_trade_no):
    """Mark an order that WeChat refused to create."""
    with transaction(db):
        db.execute(
            "UPDATE orders SET state = 'CLOSED' WHERE out_trade_no = ? AND state = 'NOTPAY'",
            [out_trade_no],
        )


def get_order(db, out_trade_no, person_id=None):
    """Return the order (only if it is ``person_id``'s, when given), or None."""
    order = one(db, "SELECT * FROM orders WHERE out_trade_no = ?", [out_trade_no])
    if order is None or (person_id is not None and order["person_id"] != person_id):
        return None
    return order


def list_orders(db, person_id):
    """Return the person's orders, newest first, each with its refunds."""
    orders = list(
        db.query("SELECT * FROM orders WHERE person_id = ? ORDER BY created_at DESC", [person_id])
    )
    for order in orders:
        order["refunds"] = list(
            db.query(
                "SELECT * FROM refunds WHERE out_trade_no = ? ORDER BY created_at",
                [order["out_trade_no"]],
            )
        )
    return orders


def list_paid_orders(db, limit=100):
    """Return the latest paid (or refunded) orders of everyone, with what is refundable."""
    rows = list(
        db.query(
            "SELECT * FROM orders WHERE state IN ('SUCCESS', 'REFUND') ORDER BY created_at DESC LIMIT ?",
            [limit],
        )
    )
    for row in rows:
        row["refundable"] = refundable(db, row["out_trade_no"])
        row["refund_count"] = db.execute(
            "SELECT COUNT(*) FROM refunds WHERE out_trade_no = ?", [row["out_trade_no"]]
        ).fetchone()[0]
    return rows


def mark_paid(db, out_trade_no, transaction_id, paid_at):
    """NOTPAY → SUCCESS; return True if this call changed it (repeats change nothing)."""
    with transaction(db):
        cursor = db.execute(
            "UPDATE orders SET state = 'SUCCESS', transaction_id = ?, paid_at = ? "
            "WHERE out_trade_no = ? AND state = 'NOTPAY'",
            [transaction_id, paid_at, out_trade_no],
        )
    return cursor.rowcount == 1


def seen_notification(db, notification_id, event_type):
    """Record a notification id; return True if it had been processed before."""
    with transaction(db):
        cursor = db.execute(
            "INSERT OR IGNORE INTO pay_notifications (id, event_type, received_at) VALUES (?, ?, ?)",
            [notification_id, event_type, time.time()],
        )
    return cursor.rowcount == 0


def start_refund(db, out_refund_no, out_trade_no, amount):
    """Reserve a refund of ``amount``; return (refund row, created).

    The same ``out_refund_no`` again returns the existing refund. Refuses (ValueError)
    when the order's live refunds plus this one would exceed what was paid.
    """
    with transaction(db):
        existing = one(db, "SELECT * FROM refunds WHERE out_refund_no = ?", [out_refund_no])
        if existing:
            if existing["out_trade_no"] != out_trade_no or existing["amount"] != amount:
                raise ValueError("out_refund_no already used for another refund")
            return existing, False
        order = one(db, "SELECT amount, state FROM orders WHERE out_trade_no = ?", [out_trade_no])
        if order is None or order["state"] not in ("SUCCESS", "REFUND"):
            raise ValueError("order not paid")
        marks = ", ".join("?" for _ in LIVE_REFUNDS)
        refunded = db.execute(
            f"SELECT COALESCE(SUM(amount), 0) FROM refunds WHERE out_trade_no = ? AND status IN ({marks})",
            [out_trade_no, *LIVE_REFUNDS],
        ).fetchone()[0]
        if amount <= 0 or refunded + amount > order["amount"]:
            raise ValueError("more than the order has left")
        db.execute(
            "INSERT INTO refunds (out_refund_no, out_trade_no, amount, status, created_at) "
            "VALUES (?, ?, ?, 'PENDING', ?)",
            [out_refund_no, out_trade_no, amount, time.time()],
        )
    return one(db, "SELECT * FROM refunds WHERE out_refund_no = ?", [out_refund_no]), True


def get_refund(db, out_refund_no):
    """Return the refund row, or None."""
    return one(db, "SELECT * FROM refunds WHERE out_refund_no = ?", [out_refund_no])


def refundable(db, out_trade_no):
    """Return how many fen of the order are not yet (being) refunded."""
    marks = ", ".join("?" for _ in LIVE_REFUNDS)
    row = db.execute(
        f"SELECT o.amount - COALESCE((SELECT SUM(amount) FROM refunds r WHERE r.out_trade_no = o.out_trade_no "
        f"AND r.status IN ({marks})), 0) FROM orders o WHERE o.out_trade_no = ?",
        [*LIVE_REFUNDS, out_trade_no],
    ).fetchone()
    return row[0] if row else 0


def update_refund(db, out_refund_no, status, refund_id=None, funds_account=None):
    """Record WeChat's word on a refund; a state never moves back (see ``REFUND_MOVES``)."""
    with transaction(db):
        row = one(db, "SELECT status FROM refunds WHERE out_refund_no = ?", [out_refund_no])
        if row is None:
            return
        if status not in REFUND_MOVES.get(row["status"], ()):
            status = row["status"]
        db.execute(
            "UPDATE refunds SET status = ?, refund_id = COALESCE(?, refund_id), "
            "funds_account = COALESCE(?, funds_account), updated_at = ? WHERE out_refund_no = ?",
            [status, refund_id, funds_account, time.time(), out_refund_no],
        )
        if status == "SUCCESS":
            db.execute(
                "UPDATE orders SET state = 'REFUND' WHERE out_trade_no = "
                "(SELECT out_trade_no FROM refunds WHERE out_refund_no = ?)",
                [out_refund_no],
            )


def claim_order_query(db, out_trade_no, interval, now=None):
    """Return True for the one caller per ``interval`` seconds that may ask WeChat Pay."""
    now = now or time.time()
    with transaction(db):
        cursor = db.execute(
            "UPDATE orders SET queried_at = ? WHERE out_trade_no = ? "
            "AND (queried_at IS NULL OR queried_at <= ?)",
            [now, out_trade_no, now - interval],
        )
    return cursor.rowcount == 1
