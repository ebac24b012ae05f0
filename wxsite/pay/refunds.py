"""Refunds: never more than was paid, never twice, and the AVAILABLE-funds fallback.

A refund's first call to WeChat Pay is made in the request (the operator sees WeChat's
answer); when that call fails or times out (the outcome is unknown), the refund stays
PENDING and the ``refund.retry`` job (``wxsite.jobs``) sends it again with the **same**
``out_refund_no``, with backoff, until WeChat answers. WeChat treats a repeated
out_refund_no as the same refund, so a retry after a lost answer (or after a worker was
killed mid-call) can never refund twice.
"""

import logging
import time

from authlib.common.security import generate_token

from flask import current_app, has_request_context, url_for

from .. import clock, store
from ..store import pay as pay_store
from ..wechat.pay import PayError
from .apply import apply_refund

log = logging.getLogger("wxsite.pay")


#: Seconds before a refund that is still waiting is tried again, doubling up to RETRY_MAX.
RETRY_BASE = 60
RETRY_MAX = 6 * 3600


class RefundError(Exception):
    """A refund that cannot be made; the message is for people.

    ``reason``: ``NO_ORDER`` or the store's ``RefundRefused`` reason when the refund was
    refused before anything was sent (None otherwise), for callers that word it themselves.
    """

    NO_ORDER = "no_order"

    def __init__(self, message, reason=None):
        super().__init__(message)
        self.reason = reason


#: What people read when the store refuses to reserve a refund.
REFUSALS = {
    store.RefundRefused.NOT_PAID: "订单未支付，不能退款",
    store.RefundRefused.NUMBER_REUSED: "该退款单号已用于另一笔退款",
    store.RefundRefused.TOO_MUCH: "退款金额超过可退金额",
}


def new_refund_no():
    """Return a fresh out_refund_no."""
    return "RF" + time.strftime("%Y%m%d%H%M%S") + generate_token(8)


def refund(db, client, out_trade_no, amount=None, out_refund_no=None, notify_url=None):
    """Refund ``amount`` fen (default: all that is left); return the refund row.

    The refund is reserved in the database first, so a repeated request with the same
    ``out_refund_no`` is the same refund, and concurrent ones cannot exceed the order.
    The row that comes back is PROCESSING or SUCCESS (accepted), or PENDING with
    ``fail_reason`` NOT_ENOUGH when the merchant balance is short (retried later).
    """
    order = store.get_order(db, out_trade_no)
    if order is None:
        raise RefundError("订单不存在", RefundError.NO_ORDER)
    if amount is None:
        amount = store.refundable(db, out_trade_no)
    try:
        row, _ = store.start_refund(db, out_refund_no or new_refund_no(), out_trade_no, amount)
    except store.RefundRefused as exc:
        raise RefundError(REFUSALS[exc.reason], exc.reason) from None
    if row["status"] == "SUCCESS":
        return row
    return submit(db, client, row, order["amount"], notify_url)


def backoff(attempts):
    """Return the seconds to wait before try number ``attempts + 1`` of one refund."""
    return min(RETRY_BASE * 2 ** min(attempts, 20), RETRY_MAX)


def submit(db, client, row, total, notify_url=None, now=None, queue_retry=True):
    """Send a reserved refund to WeChat (always with its own out_refund_no); return the row.

    When WeChat answers NOT_ENOUGH (the unsettled funds are short), it is retried once
    from the available balance (old-fund-flow merchants); when that is short too, or
    refused (a merchant on the new fund flow), the refund stays PENDING, due again after a
    backoff (sent first without funds_account again), and the operator is told to top up.
    """
    no = row["out_refund_no"]
    try:
        try:
            result = client.refund(row["out_trade_no"], no, row["amount"], total, notify_url)
        except PayError as exc:
            if exc.code != "NOT_ENOUGH":
                raise
            log.info("refund %s: unsettled funds short, retrying from available", no)
            try:
                result = client.refund(
                    row["out_trade_no"], no, row["amount"], total, notify_url, "AVAILABLE"
                )
            except PayError as fallback:
                if fallback.unavailable or fallback.code == "NOT_ENOUGH":
                    raise
                # AVAILABLE is for old-fund-flow merchants only; refused (e.g. PARAM_ERROR
                # for a merchant on the new fund flow), the balance is still what is short.
                log.warning(
                    "refund %s: the fallback from available funds was refused (%s: %s)",
                    no,
                    fallback.code,
                    fallback.errmsg,
                )
                raise exc from None
    except PayError as exc:
        now = now or clock.now()
        retry_at = now + backoff(row["attempts"])
        if exc.unavailable:
            # Unknown outcome: keep PENDING; the same out_refund_no is retried by a job.
            pay_store.defer_refund(db, no, "UNAVAILABLE", retry_at)
            log.warning("refund %s: WeChat Pay did not answer; retried with the same number", no)
            if queue_retry:
                queue_retry_job(no)
            raise RefundError("微信支付暂时不可用，稍后将用同一退款单号自动重试") from None
        if exc.code == "NOT_ENOUGH":
            pay_store.defer_refund(db, no, "NOT_ENOUGH", retry_at)
            log.warning(
                "refund %s: merchant balance short (unsettled and available); kept pending, "
                "retried with the same number after %s: top up the merchant balance",
                no,
                time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(retry_at)),
            )
            return store.get_refund(db, no)
        store.update_refund(db, no, "FAILED", fail_reason=exc.errmsg or exc.code)
        raise RefundError(f"微信支付拒绝退款：{exc.errmsg or exc.code}") from None
    result.setdefault("out_refund_no", no)
    result.setdefault("status", "PROCESSING")  # an answer is an acceptance, nothing more
    apply_refund(result, answered=True)
    return store.get_refund(db, no)


def retry_key(out_refund_no):
    """Return the job key of a refund's retries."""
    return f"refund.retry:{out_refund_no}"


def queue_retry_job(out_refund_no):
    """Queue the refund.retry job of a refund (one at a time per refund; never raises).

    Its first try comes after the jobs' first backoff (WXSITE_JOBS_RETRY_BASE).
    """
    from .. import jobs

    delay = jobs.backoff(current_app.config, 1)
    jobs.enqueue("refund.retry", {"out_refund_no": out_refund_no}, retry_key(out_refund_no), delay)


def retry_job(db, out_refund_no):
    """The refund.retry job: send a PENDING refund again, with its own out_refund_no.

    Idempotent: a refund WeChat has answered for (PROCESSING, SUCCESS …) is left alone;
    the refund's claim keeps two workers from sending it at once; and what is sent is
    always the number reserved in the database, never a new one.
    """
    from .. import wx
    from ..jobs.tasks import Permanent, Retry

    client = wx.pay_client()
    if client is None:
        raise Permanent("WeChat Pay is not configured")
    row = store.get_refund(db, out_refund_no)
    if row is None:
        raise Permanent("no such refund")
    if row["status"] != "PENDING":
        return f"nothing to send: {row['status']}"
    now = clock.now()
    # The job owns the retries of a refund whose outcome is unknown: it does not wait for
    # the refund's own backoff (which paces pay.reconcile, and pay.reconcile leaves a
    # refund alone while its job is active). Taking the claim over a live one could at
    # worst send the same out_refund_no twice at once, which WeChat Pay answers as one.
    lease = current_app.config["WXSITE_JOBS_LEASE"]
    if not pay_store.claim_refund(
        db, out_refund_no, "PENDING", max(now, row["next_try_at"] or 0), now + lease
    ):
        raise Retry("the refund changed meanwhile")
    order = store.get_order(db, row["out_trade_no"])
    try:
        after = submit(db, client, row, order["amount"], notify_url(), now, queue_retry=False)
    except RefundError as exc:
        again = store.get_refund(db, out_refund_no)
        if again["status"] == "PENDING":  # retried after the job's backoff (WXSITE_JOBS_RETRY_*)
            raise Retry(
                f"WeChat Pay did not answer ({again['fail_reason'] or 'unavailable'}); "
                "the refund stays PENDING under the same out_refund_no"
            ) from None
        raise Permanent(str(exc)) from None
    if after["status"] == "PENDING":
        return "waiting for a merchant balance top-up (pay.reconcile retries it)"
    return f"sent again, now {after['status']}"


def notify_url():
    """Return where refund notifications go: this request's host, else WXSITE_PUBLIC_URL."""
    if has_request_context():
        return url_for("inbound.refund_notify", _external=True)
    public = current_app.config["WXSITE_PUBLIC_URL"]
    if not public:  # no request and no public base: queries cover the outcome
        return None
    with current_app.test_request_context(base_url=public):
        return url_for("inbound.refund_notify", _external=True)
