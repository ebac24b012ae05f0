"""Refunds: never more than was paid, never twice, and the AVAILABLE-funds fallback."""

import logging
import time

from authlib.common.security import generate_token

from .. import store
from ..wechat.pay import PayError

log = logging.getLogger("wxsite.pay")


class RefundError(Exception):
    """A refund that cannot be made; the message is for people."""


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
    When WeChat answers NOT_ENOUGH (the unsettled funds are short), it is retried once
    from the available balance and the row records which funds paid it.
    """
    order = store.get_order(db, out_trade_no)
    if order is None:
        raise RefundError("订单不存在")
    if amount is None:
        amount = store.refundable(db, out_trade_no)
    try:
        row, _ = store.start_refund(db, out_refund_no or new_refund_no(), out_trade_no, amount)
    except store.RefundRefused as exc:
        raise RefundError(REFUSALS[exc.reason]) from None
    if row["status"] == "SUCCESS":
        return row
    try:
        try:
            result = client.refund(
                out_trade_no, row["out_refund_no"], amount, order["amount"], notify_url
            )
        except PayError as exc:
            if exc.code != "NOT_ENOUGH":
                raise
            log.info(
                "refund %s: unsettled funds short, retrying from available", row["out_refund_no"]
            )
            result = client.refund(
                out_trade_no,
                row["out_refund_no"],
                amount,
                order["amount"],
                notify_url,
                funds_account="AVAILABLE",
            )
    except PayError as exc:
        if exc.unavailable:
            # Unknown outcome: keep PENDING; the same out_refund_no can be retried safely.
            raise RefundError("微信支付暂时不可用，请用同一退款单号重试") from None
        store.update_refund(db, row["out_refund_no"], "FAILED")
        raise RefundError(f"微信支付拒绝退款：{exc.errmsg or exc.code}") from None
    store.update_refund(
        db,
        row["out_refund_no"],
        result.get("status", "PROCESSING"),
        result.get("refund_id"),
        result.get("funds_account"),
    )
    return store.get_refund(db, row["out_refund_no"])
