"""WeChat Pay: orders, refunds and the ids of notifications already applied."""

from .. import clock
from .db import marks, transaction

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


class RefundRefused(ValueError):
    """A refund the store will not reserve; ``reason`` says why (see the constants)."""

    NOT_PAID = "not_paid"
    NUMBER_REUSED = "number_reused"
    TOO_MUCH = "too_much"

    def __init__(self, reason):
        super().__init__(reason)
        self.reason = reason


def create_order(db, out_trade_no, person_id, appid, openid, product, description, amount):
    """Record a new, unpaid order (before asking WeChat, so its notification finds it)."""
    with transaction(db):
        db.execute(
            "INSERT INTO orders (out_trade_no, person_id, appid, openid, product, description, "
            "amount, state, created_at) VALUES (:no, :person, :appid, :openid, :product, "
            ":description, :amount, 'NOTPAY', :now)",
            {
                "no": out_trade_no,
                "person": person_id,
                "appid": appid,
                "openid": openid,
                "product": product,
                "description": description,
                "amount": amount,
                "now": clock.now(),
            },
        )


def set_order_prepay(db, out_trade_no, prepay_id):
    """Store the prepay_id WeChat gave the order."""
    with transaction(db):
        db.execute(
            "UPDATE orders SET prepay_id = :prepay WHERE out_trade_no = :no",
            {"prepay": prepay_id, "no": out_trade_no},
        )


def close_order(db, out_trade_no, now=None):
    """Mark an unpaid order closed (WeChat refused it, or its payment window ended)."""
    with transaction(db):
        changed = db.execute(
            "UPDATE orders SET state = 'CLOSED', closed_at = :now "
            "WHERE out_trade_no = :no AND state = 'NOTPAY'",
            {"no": out_trade_no, "now": now or clock.now()},
        )
    return changed == 1


def overdue_orders(db, before, limit):
    """Return unpaid orders created before ``before`` (their payment window is over)."""
    return db.query(
        "SELECT * FROM orders WHERE state = 'NOTPAY' AND created_at <= :before "
        "ORDER BY created_at LIMIT :limit",
        {"before": before, "limit": limit},
    )


def get_order(db, out_trade_no, person_id=None):
    """Return the order (only if it is ``person_id``'s, when given), or None."""
    order = db.one("SELECT * FROM orders WHERE out_trade_no = :no", {"no": out_trade_no})
    if order is None or (person_id is not None and order["person_id"] != person_id):
        return None
    return order


def _refunds_of(db, out_trade_no):
    return db.query(
        "SELECT * FROM refunds WHERE out_trade_no = :no ORDER BY created_at", {"no": out_trade_no}
    )


def list_orders(db, person_id):
    """Return the person's orders, newest first, each with its refunds."""
    orders = db.query(
        "SELECT * FROM orders WHERE person_id = :person ORDER BY created_at DESC",
        {"person": person_id},
    )
    for order in orders:
        order["refunds"] = _refunds_of(db, order["out_trade_no"])
    return orders


def list_paid_orders(db, limit=100):
    """Return the latest paid (or refunded) orders of everyone, with what is refundable."""
    rows = db.query(
        "SELECT * FROM orders WHERE state IN ('SUCCESS', 'REFUND') "
        "ORDER BY created_at DESC LIMIT :limit",
        {"limit": limit},
    )
    for row in rows:
        row["refundable"] = refundable(db, row["out_trade_no"])
        row["refunds"] = _refunds_of(db, row["out_trade_no"])
        row["refund_count"] = len(row["refunds"])
    return rows


def mark_paid(db, out_trade_no, transaction_id, paid_at):
    """NOTPAY → SUCCESS; return True if this call changed it (repeats change nothing)."""
    with transaction(db):
        changed = db.execute(
            "UPDATE orders SET state = 'SUCCESS', transaction_id = :tx, paid_at = :paid "
            "WHERE out_trade_no = :no AND state = 'NOTPAY'",
            {"tx": transaction_id, "paid": paid_at, "no": out_trade_no},
        )
    return changed == 1


def _live_refunded(db, out_trade_no):
    names, params = marks("s", LIVE_REFUNDS)
    return db.scalar(
        "SELECT COALESCE(SUM(amount), 0) FROM refunds WHERE out_trade_no = :no "
        f"AND status IN ({names})",
        {**params, "no": out_trade_no},
    )


def start_refund(db, out_refund_no, out_trade_no, amount):
    """Reserve a refund of ``amount``; return (refund row, created).

    The same ``out_refund_no`` again returns the existing refund. Refuses
    (``RefundRefused``) when the order's live refunds plus this one would exceed what was
    paid: the order's row is locked while its refunds are summed, so parallel refunds of
    one order queue on every engine.
    """
    with transaction(db):
        order = db.one(
            f"SELECT amount, state FROM orders WHERE out_trade_no = :no{db.for_update}",
            {"no": out_trade_no},
        )
        existing = get_refund(db, out_refund_no)
        if existing:
            if existing["out_trade_no"] != out_trade_no or existing["amount"] != amount:
                raise RefundRefused(RefundRefused.NUMBER_REUSED)
            return existing, False
        if order is None or order["state"] not in ("SUCCESS", "REFUND"):
            raise RefundRefused(RefundRefused.NOT_PAID)
        if amount <= 0 or _live_refunded(db, out_trade_no) + amount > order["amount"]:
            raise RefundRefused(RefundRefused.TOO_MUCH)
        db.execute(
            "INSERT INTO refunds (out_refund_no, out_trade_no, amount, status, created_at) "
            "VALUES (:refund_no, :no, :amount, 'PENDING', :now)",
            {"refund_no": out_refund_no, "no": out_trade_no, "amount": amount, "now": clock.now()},
        )
    return get_refund(db, out_refund_no), True


def get_refund(db, out_refund_no):
    """Return the refund row, or None."""
    return db.one("SELECT * FROM refunds WHERE out_refund_no = :no", {"no": out_refund_no})


def refundable(db, out_trade_no):
    """Return how many fen of the order are not yet (being) refunded."""
    amount = db.scalar("SELECT amount FROM orders WHERE out_trade_no = :no", {"no": out_trade_no})
    return 0 if amount is None else amount - _live_refunded(db, out_trade_no)


def update_refund(
    db, out_refund_no, status, refund_id=None, funds_account=None, fail_reason=None, now=None
):
    """Record WeChat's word on a refund; a state never moves back (see ``REFUND_MOVES``)."""
    with transaction(db):
        row = db.one(
            "SELECT status, out_trade_no, next_try_at, fail_reason FROM refunds "
            f"WHERE out_refund_no = :no{db.for_update}",
            {"no": out_refund_no},
        )
        if row is None:
            return
        moved = status in REFUND_MOVES.get(row["status"], ())
        if not moved:
            status, fail_reason = row["status"], row["fail_reason"]
        elif status in ("PROCESSING", "SUCCESS"):
            fail_reason = None  # a wait or a refusal of before is over
        db.execute(
            "UPDATE refunds SET status = :status, refund_id = COALESCE(:refund_id, refund_id), "
            "funds_account = COALESCE(:funds, funds_account), fail_reason = :reason, "
            "next_try_at = :next, updated_at = :now WHERE out_refund_no = :no",
            {
                "status": status,
                "refund_id": refund_id,
                "funds": funds_account,
                "reason": fail_reason,
                # A new state starts its own clock (when to ask about it next).
                "next": None if moved else row["next_try_at"],
                "now": now or clock.now(),
                "no": out_refund_no,
            },
        )
        if status == "SUCCESS":
            db.execute(
                "UPDATE orders SET state = 'REFUND' WHERE out_trade_no = :no",
                {"no": row["out_trade_no"]},
            )


def claim_order_query(db, out_trade_no, interval, now=None):
    """Return True for the one caller per ``interval`` seconds that may ask WeChat Pay."""
    now = now or clock.now()
    with transaction(db):
        changed = db.execute(
            "UPDATE orders SET queried_at = :now WHERE out_trade_no = :no "
            "AND (queried_at IS NULL OR queried_at <= :before)",
            {"now": now, "no": out_trade_no, "before": now - interval},
        )
    return changed == 1


def defer_refund(db, out_refund_no, reason, retry_at):
    """Count one more try of a refund still waiting; the next is due at ``retry_at``."""
    with transaction(db):
        db.execute(
            "UPDATE refunds SET attempts = attempts + 1, next_try_at = :retry_at, "
            "fail_reason = COALESCE(:reason, fail_reason), updated_at = :now "
            "WHERE out_refund_no = :no",
            {"retry_at": retry_at, "reason": reason, "now": clock.now(), "no": out_refund_no},
        )


def due_refunds(db, statuses, before, now, limit):
    """Return refunds in ``statuses`` last changed before ``before`` whose next try is due."""
    names, params = marks("s", statuses)
    return db.query(
        f"SELECT * FROM refunds WHERE status IN ({names}) "
        "AND COALESCE(updated_at, created_at) <= :before "
        "AND (next_try_at IS NULL OR next_try_at <= :now) ORDER BY created_at LIMIT :limit",
        {**params, "before": before, "now": now, "limit": limit},
    )


def retry_short_now(db, settled_before, now=None):
    """Make the refunds waiting for a balance top-up due now (their backoff cut short).

    Only those last changed before ``settled_before``: the ones the retry will take (it
    leaves a refund changed in the last minute alone, as it may still be in flight).
    """
    now = now or clock.now()
    with transaction(db):
        return db.execute(
            "UPDATE refunds SET next_try_at = :now "
            "WHERE status = 'PENDING' AND fail_reason = 'NOT_ENOUGH' AND next_try_at > :now "
            "AND COALESCE(updated_at, created_at) <= :before",
            {"now": now, "before": settled_before},
        )


def claim_refund(db, out_refund_no, status, now, lease_until):
    """Return True for the one caller that may try this refund now (until ``lease_until``)."""
    # Two workers retrying one refund would be safe (same out_refund_no), but wasteful.
    with transaction(db):
        changed = db.execute(
            "UPDATE refunds SET next_try_at = :lease WHERE out_refund_no = :no "
            "AND status = :status AND (next_try_at IS NULL OR next_try_at <= :now)",
            {"lease": lease_until, "no": out_refund_no, "status": status, "now": now},
        )
    return changed == 1


def short_refunds(db):
    """Return (count, fen) of refunds waiting for the merchant balance to be topped up."""
    row = db.one(
        "SELECT COUNT(*) AS n, COALESCE(SUM(amount), 0) AS fen FROM refunds "
        "WHERE status = 'PENDING' AND fail_reason = 'NOT_ENOUGH'"
    )
    return row["n"], row["fen"]


def refunds_of(db, out_trade_no):
    """Return an order's refunds, oldest first."""
    return _refunds_of(db, out_trade_no)
