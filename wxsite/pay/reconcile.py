"""The periodic pay work: ask about refunds with no word yet, retry waiting ones, close orders.

The ``pay.reconcile`` job (``wxsite.jobs``) runs ``reconcile`` every minute, at most once
per INTERVAL across every process and host (a shared turn in the store); ``flask pay
reconcile`` runs it once by hand. Pages no longer do this work themselves.
"""

import logging

from .. import clock, store, wx
from ..store import pay as pay_store
from ..wechat.pay import PayError
from .apply import apply_refund, apply_transaction
from .refunds import RefundError, backoff, notify_url, retry_key, submit

log = logging.getLogger("wxsite.pay")

#: WeChat's default payment window of a JSAPI order (time_expire unset): two hours.
PAY_WINDOW = 2 * 3600
#: Seconds a refund may stay PROCESSING (or an unsent PENDING) before WeChat is asked.
QUERY_AFTER = 60
#: Seconds one try of a refund holds it against other workers.
LEASE = 120
#: At most this many refunds and orders per kind in one run (a page waits for it).
BATCH = 20
#: Pages run it at most once per this many seconds, across every worker.
INTERVAL = 60
#: The throttle key that spaces the runs pages start.
THROTTLE_KEY = "pay:reconcile"


def reconcile(db, client, now=None, limit=BATCH):
    """Run every piece once; return how many refunds and orders each one moved or tried."""
    now = now or clock.now()
    return {
        "queried": query_refunds(db, client, now, limit),
        "retried": retry_refunds(db, client, now, limit),
        "closed": close_overdue_orders(db, client, now, limit),
    }


def query_refunds(db, client, now, limit=BATCH):
    """Ask WeChat about refunds accepted but with no outcome yet (a lost notification)."""
    done = 0
    for row in pay_store.due_refunds(db, ("PROCESSING", "ABNORMAL"), now - QUERY_AFTER, now, limit):
        no = row["out_refund_no"]
        if not pay_store.claim_refund(db, no, row["status"], now, now + LEASE):
            continue
        try:
            apply_refund(client.query_refund(no), answered=True)
        except PayError as exc:
            log.warning("refund %s: query failed (%s)", no, exc.code or "unavailable")
        done += 1
        if store.get_refund(db, no)["status"] == row["status"]:
            # No news: ask again later, less and less often.
            pay_store.defer_refund(db, no, None, now + backoff(row["attempts"]))
    return done


def retry_refunds(db, client, now, limit=BATCH):
    """Send refunds still PENDING again, with the same out_refund_no (its backoff is due)."""
    done = 0
    for row in pay_store.due_refunds(db, ("PENDING",), now - QUERY_AFTER, now, limit):
        no = row["out_refund_no"]
        if store.job_states(db, [retry_key(no)]).get(retry_key(no)) in store.JOB_ACTIVE:
            continue  # its refund.retry job is on it
        if not pay_store.claim_refund(db, no, "PENDING", now, now + LEASE):
            continue
        order = store.get_order(db, row["out_trade_no"])
        try:
            after = submit(db, client, row, order["amount"], notify_url(), now)
        except RefundError as exc:
            log.warning("refund %s: retry failed: %s", no, exc)
        else:
            log.info("refund %s: retried, now %s", no, after["status"])
        done += 1
    return done


def close_overdue_orders(db, client, now, limit=BATCH):
    """Close at WeChat the unpaid orders whose payment window is over, then here."""
    done = 0
    for row in pay_store.overdue_orders(db, now - PAY_WINDOW, limit):
        no = row["out_trade_no"]
        # Shares the polls' claim: one worker asks WeChat about one order at a time.
        if not store.claim_order_query(db, no, LEASE, now):
            continue
        try:
            if row["prepay_id"]:
                client.close(no)
        except PayError as exc:
            if exc.code == "ORDERPAID":  # paid at the last minute: take WeChat's word
                _apply_query(client, no)
                continue
            if exc.code != "ORDER_NOT_EXIST":
                log.warning("order %s: close failed (%s)", no, exc.code or "unavailable")
                continue
        if pay_store.close_order(db, no, now):
            log.info("order %s: unpaid after its payment window, closed", no)
            done += 1
    return done


def _apply_query(client, out_trade_no):
    try:
        apply_transaction(client.query(out_trade_no))
    except PayError as exc:
        log.warning("order %s: query failed (%s)", out_trade_no, exc.code or "unavailable")


def reconcile_job(now=None):
    """The pay.reconcile job: ``reconcile`` once per INTERVAL across processes and hosts."""
    client = wx.pay_client()
    if client is None:
        return "WeChat Pay is off"
    db = store.get_db()
    now = now or clock.now()
    if store.take_attempt(db, {THROTTLE_KEY: 1}, INTERVAL, now):
        return "another process reconciled within the interval"
    done = reconcile(db, client, now)
    return ", ".join(f"{k} {v}" for k, v in done.items())
