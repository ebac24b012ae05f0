"""Applying what WeChat Pay says about an order or a refund (notification or query)."""

import logging

from flask import current_app

from .. import store

log = logging.getLogger("wxsite.pay")


def apply_transaction(tx):
    """Mark the order paid if WeChat's transaction matches it (merchant, appid, amount, payer)."""
    db = store.get_db()
    row = store.get_order(db, tx.get("out_trade_no", ""))
    cfg = current_app.config
    if row is None or tx.get("mchid") != cfg["WXPAY_MCHID"] or tx.get("appid") != row["appid"]:
        log.warning("transaction for an unknown order or another merchant ignored")
        return
    if tx.get("trade_state") != "SUCCESS":
        return
    if (tx.get("amount") or {}).get("total") != row["amount"] or (tx.get("payer") or {}).get(
        "openid"
    ) != row["openid"]:
        log.error("transaction %s does not match its order (amount or payer)", row["out_trade_no"])
        return
    store.mark_paid(db, row["out_trade_no"], tx.get("transaction_id"), tx.get("success_time"))


#: Why a refund did not go through, by the state WeChat reports (kept on the row).
FAILED_STATES = ("CLOSED", "ABNORMAL")


def apply_refund(resource, answered=False):
    """Move a refund of ours to the state WeChat reports, if number, order and amount match.

    ``answered``: the resource is WeChat's answer to our own signed request (a refund or a
    query of one), which names no merchant; a notification must name ours.
    """
    db = store.get_db()
    status = resource.get("refund_status") or resource.get("status")
    mchid_ok = answered or resource.get("mchid") == current_app.config["WXPAY_MCHID"]
    if not mchid_ok or not isinstance(status, str) or not status:
        log.warning("refund notification for another merchant, or without a status, ignored")
        return
    row = store.get_refund(db, str(resource.get("out_refund_no", "")))
    amount = resource.get("amount") if isinstance(resource.get("amount"), dict) else {}
    if (
        row is None
        or resource.get("out_trade_no") != row["out_trade_no"]
        or amount.get("refund") != row["amount"]
    ):
        log.error("refund notification does not match a refund of ours (number, order or amount)")
        return
    store.update_refund(
        db,
        row["out_refund_no"],
        status,
        resource.get("refund_id"),
        resource.get("funds_account"),
        fail_reason=status if status in FAILED_STATES else None,
    )
