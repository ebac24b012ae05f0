"""WeChat Pay API v3 as the emulator plays it: orders, payment, notifications, refunds.

Requests must carry a valid merchant signature; answers and notifications are signed
with the platform key and notifications' resources encrypted with the APIv3 key. The
merchant balance is split into unsettled and available funds, so that the refund
fallback (NOT_ENOUGH → funds_account AVAILABLE) can be exercised.
"""

import base64
import json
import os
import re
import secrets
import threading
import time
import urllib.error
import urllib.request
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from flask import Blueprint, Response, current_app, jsonify, request

from wxsite.wechat import protocol

bp = Blueprint("pay", __name__)
KEYS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "pay_keys")
OUT_NO = re.compile(r"[A-Za-z0-9_\-|*]{6,64}")
_AUTH = re.compile(r'(\w+)="([^"]*)"')


def _read(name):
    with open(os.path.join(KEYS, name), "rb") as f:
        return f.read()


class PayState:
    """Orders, refunds and the merchant balance, under one lock."""

    def __init__(self, apiv3_key):
        self.lock = threading.RLock()
        self.merchant_key = serialization.load_pem_public_key(_read("merchant.pub.pem"))
        self.platform_key = serialization.load_pem_private_key(_read("platform.key.pem"), None)
        self.apiv3_key = apiv3_key
        self.reset()

    def reset(self):
        with self.lock:
            self.orders = {}
            self.refunds = {}
            self.balance = {"unsettled": 0, "available": 100_000}
            self.notifications = []


def pay_state():
    return current_app.extensions["wxemu.pay"]


def _sign(message):
    raw = pay_state().platform_key.sign(message.encode(), padding.PKCS1v15(), hashes.SHA256())
    return base64.b64encode(raw).decode()


def _signed_headers(body_text):
    timestamp, nonce = str(int(time.time())), secrets.token_hex(16)
    return {
        "Wechatpay-Timestamp": timestamp,
        "Wechatpay-Nonce": nonce,
        "Wechatpay-Serial": protocol.EMULATOR_PLATFORM_KEY_ID,
        "Wechatpay-Signature": _sign(f"{timestamp}\n{nonce}\n{body_text}\n"),
    }


def answer(payload, status=200):
    """A signed JSON answer, as WeChat Pay sends every answer."""
    text = json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
    response = Response(text, status=status, mimetype="application/json")
    response.headers.update(_signed_headers(text))
    return response


def fail(status, code, message):
    return answer({"code": code, "message": message}, status)


@bp.before_request
def check_merchant_signature():
    """Refuse requests not signed by the merchant key (WeChat Pay's 401 SIGN_ERROR)."""
    if not request.path.startswith("/v3/"):
        return None
    header = request.headers.get("Authorization", "")
    if not header.startswith(protocol.PAY_AUTH_SCHEMA + " "):
        return fail(401, "SIGN_ERROR", "Authorization 缺失或格式错误")
    fields = dict(_AUTH.findall(header))
    if fields.get("mchid") != protocol.EMULATOR_MCHID:
        return fail(401, "SIGN_ERROR", "商户号不存在")
    if fields.get("serial_no") != protocol.EMULATOR_MERCHANT_SERIAL:
        return fail(401, "SIGN_ERROR", "商户证书序列号错误")
    timestamp = fields.get("timestamp", "")
    if not timestamp.isdigit() or abs(time.time() - int(timestamp)) > protocol.PAY_MAX_SKEW:
        return fail(401, "SIGN_ERROR", "请求时间戳过期")
    target = request.full_path.rstrip("?")
    body = request.get_data(as_text=True)
    message = f"{request.method}\n{target}\n{timestamp}\n{fields.get('nonce_str', '')}\n{body}\n"
    if not _merchant_signed(message, fields.get("signature", "")):
        return fail(401, "SIGN_ERROR", "签名错误")
    return None


def _merchant_signed(message, signature):
    try:
        pay_state().merchant_key.verify(
            base64.b64decode(signature), message.encode(), padding.PKCS1v15(), hashes.SHA256()
        )
    except (InvalidSignature, ValueError):
        return False
    return True


def _body():
    data = request.get_json(silent=True)
    return data if isinstance(data, dict) else {}


@bp.post(protocol.PAY_JSAPI)
def jsapi():
    data = _body()
    amount = (data.get("amount") or {}).get("total")
    openid = (data.get("payer") or {}).get("openid")
    out_trade_no = data.get("out_trade_no", "")
    if (
        data.get("mchid") != protocol.EMULATOR_MCHID
        or data.get("appid") not in protocol.EMULATOR_ACCOUNTS
    ):
        return fail(400, "APPID_MCHID_NOT_MATCH", "appid和mch_id不匹配")
    if (
        not OUT_NO.fullmatch(out_trade_no)
        or not isinstance(amount, int)
        or amount <= 0
        or not openid
    ):
        return fail(400, "PARAM_ERROR", "参数错误")
    if not data.get("description") or not str(data.get("notify_url", "")).startswith("http"):
        return fail(400, "PARAM_ERROR", "description 或 notify_url 缺失")
    state = pay_state()
    with state.lock:
        order = state.orders.get(out_trade_no)
        if order and (order["total"] != amount or order["openid"] != openid):
            return fail(400, "INVALID_REQUEST", "订单号重复")
        if not order:
            order = state.orders[out_trade_no] = {
                "appid": data["appid"],
                "out_trade_no": out_trade_no,
                "description": data["description"],
                "total": amount,
                "openid": openid,
                "notify_url": data["notify_url"],
                "prepay_id": "wx" + secrets.token_hex(14),
                "trade_state": "NOTPAY",
                "transaction_id": None,
                "success_time": None,
                "refunded": 0,
            }
    return answer({"prepay_id": order["prepay_id"]})


@bp.get("/v3/pay/transactions/out-trade-no/<out_trade_no>")
def query(out_trade_no):
    order = pay_state().orders.get(out_trade_no)
    if order is None:
        return fail(404, "ORDER_NOT_EXIST", "订单不存在")
    return answer(_transaction(order))


def _transaction(order):
    return {
        "appid": order["appid"],
        "mchid": protocol.EMULATOR_MCHID,
        "out_trade_no": order["out_trade_no"],
        "transaction_id": order["transaction_id"],
        "trade_type": "JSAPI",
        "trade_state": order["trade_state"],
        "trade_state_desc": {"NOTPAY": "未支付", "SUCCESS": "支付成功", "REFUND": "转入退款"}[
            order["trade_state"]
        ],
        "success_time": order["success_time"],
        "payer": {"openid": order["openid"]},
        "amount": {"total": order["total"], "payer_total": order["total"], "currency": "CNY"},
    }


@bp.post(protocol.PAY_REFUNDS)
def refund():
    data = _body()
    state = pay_state()
    amount = data.get("amount") or {}
    out_refund_no = data.get("out_refund_no", "")
    funds = data.get("funds_account")
    with state.lock:
        if out_refund_no in state.refunds:  # the same request again: the same refund
            return answer(state.refunds[out_refund_no])
        order = state.orders.get(data.get("out_trade_no", ""))
        if order is None:
            return fail(404, "RESOURCE_NOT_EXISTS", "订单不存在")
        if order["trade_state"] not in ("SUCCESS", "REFUND"):
            return fail(400, "INVALID_REQUEST", "订单未支付")
        refund_fen, total = amount.get("refund"), amount.get("total")
        if (
            not OUT_NO.fullmatch(out_refund_no)
            or not isinstance(refund_fen, int)
            or refund_fen <= 0
        ):
            return fail(400, "PARAM_ERROR", "参数错误")
        if total != order["total"]:
            return fail(400, "PARAM_ERROR", "订单金额不一致")
        if order["refunded"] + refund_fen > order["total"]:
            return fail(400, "INVALID_REQUEST", "申请退款金额超过订单可退金额")
        account = "available" if funds == "AVAILABLE" else "unsettled"
        if state.balance[account] < refund_fen:
            return fail(403, "NOT_ENOUGH", "基本账户余额不足，请充值后重新发起")
        state.balance[account] -= refund_fen
        order["refunded"] += refund_fen
        order["trade_state"] = "REFUND"
        result = state.refunds[out_refund_no] = {
            "refund_id": "50" + secrets.token_hex(14),
            "out_refund_no": out_refund_no,
            "transaction_id": order["transaction_id"],
            "out_trade_no": order["out_trade_no"],
            "channel": "ORIGINAL",
            "user_received_account": "支付用户零钱",
            "status": "SUCCESS",
            "funds_account": "AVAILABLE" if funds == "AVAILABLE" else "UNSETTLED",
            "amount": {"refund": refund_fen, "total": order["total"], "currency": "CNY"},
        }
    if data.get("notify_url"):
        _notify(
            data["notify_url"],
            "REFUND.SUCCESS",
            "退款成功",
            {**result, "refund_status": "SUCCESS", "mchid": protocol.EMULATOR_MCHID},
        )
    return answer(result)


def notification(event_type, summary, resource, apiv3_key):
    """Return (headers, body) of a signed notification with an encrypted resource."""
    nonce = secrets.token_hex(6)
    associated = "transaction" if event_type.startswith("TRANSACTION") else "refund"
    plain = json.dumps(resource, ensure_ascii=False).encode()
    ciphertext = AESGCM(apiv3_key.encode()).encrypt(nonce.encode(), plain, associated.encode())
    body = json.dumps(
        {
            "id": secrets.token_hex(16),
            "create_time": time.strftime("%Y-%m-%dT%H:%M:%S+08:00"),
            "resource_type": "encrypt-resource",
            "event_type": event_type,
            "summary": summary,
            "resource": {
                "original_type": associated,
                "algorithm": "AEAD_AES_256_GCM",
                "ciphertext": base64.b64encode(ciphertext).decode(),
                "associated_data": associated,
                "nonce": nonce,
            },
        },
        ensure_ascii=False,
    )
    return {**_signed_headers(body), "Content-Type": "application/json"}, body


def _notify(url, event_type, summary, resource):
    headers, body = notification(event_type, summary, resource, pay_state().apiv3_key)
    state = pay_state()
    call = urllib.request.Request(url, data=body.encode(), headers=headers, method="POST")
    try:
        with urllib.request.urlopen(call, timeout=10) as response:
            outcome = response.status
    except urllib.error.HTTPError as exc:
        outcome = exc.code
    except (urllib.error.URLError, OSError) as exc:
        outcome = type(exc).__name__
    with state.lock:
        state.notifications.append(
            {
                "url": url,
                "event_type": event_type,
                "status": outcome,
                "headers": headers,
                "body": body,
            }
        )


# -- what the fake JS-SDK and tests call --------------------------------------------------


@bp.post("/_emu/pay/confirm")
def confirm():
    """The person pays in chooseWXPay: check paySign, mark paid, notify the merchant."""
    data = request.get_json(force=True, silent=True) or {}
    message = f"{data.get('appId')}\n{data.get('timeStamp')}\n{data.get('nonceStr')}\n{data.get('package')}\n"
    if not _merchant_signed(message, data.get("paySign", "")):
        return jsonify({"ok": False, "errMsg": "chooseWXPay:fail invalid paySign"})
    prepay_id = str(data.get("package", "")).removeprefix("prepay_id=")
    state = pay_state()
    with state.lock:
        order = next((o for o in state.orders.values() if o["prepay_id"] == prepay_id), None)
        if order is None or order["appid"] != data.get("appId"):
            return jsonify({"ok": False, "errMsg": "chooseWXPay:fail unknown prepay_id"})
        if order["trade_state"] == "NOTPAY":
            order["trade_state"] = "SUCCESS"
            order["transaction_id"] = "4200" + secrets.token_hex(12)
            order["success_time"] = time.strftime("%Y-%m-%dT%H:%M:%S+08:00")
            state.balance["unsettled"] += order["total"]
        transaction = _transaction(order)
    if data.get("notify", True):
        _notify(order["notify_url"], "TRANSACTION.SUCCESS", "支付成功", transaction)
    return jsonify({"ok": True, "errMsg": "chooseWXPay:ok"})


@bp.post("/_emu/pay/notify/<out_trade_no>")
def resend(out_trade_no):
    """Send the payment notification of an order again (lost or repeated deliveries)."""
    order = pay_state().orders.get(out_trade_no)
    if order is None or order["trade_state"] == "NOTPAY":
        return jsonify({"error": "no paid order"}), 404
    _notify(order["notify_url"], "TRANSACTION.SUCCESS", "支付成功", _transaction(order))
    return jsonify(pay_state().notifications[-1]["status"])


@bp.route("/_emu/pay/balance", methods=["GET", "POST"])
def balance():
    """Read or set the merchant balance {"unsettled": fen, "available": fen}."""
    state = pay_state()
    with state.lock:
        if request.method == "POST":
            data = request.get_json(force=True, silent=True) or {}
            for key in ("unsettled", "available"):
                if isinstance(data.get(key), int):
                    state.balance[key] = data[key]
        return jsonify(dict(state.balance))


@bp.get("/_emu/pay/notifications")
def notifications():
    """Every notification sent, with its signed headers and body (for replay tests)."""
    return jsonify(pay_state().notifications)


@bp.post("/_emu/pay/reset")
def reset():
    pay_state().reset()
    return jsonify({"ok": True})
