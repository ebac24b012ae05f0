"""WeChat Pay API v3 as the emulator plays it: orders, payment, notifications, refunds.

Requests must carry a valid merchant signature; answers and notifications are signed
with the WeChat Pay public key or a platform certificate (or either at random, as during a
merchant's switch) and notifications' resources encrypted with the APIv3 key. The
merchant balance is split into unsettled and available funds, so that the refund
fallback (NOT_ENOUGH → funds_account AVAILABLE) can be exercised. Refunds may be accepted
as PROCESSING and moved later to SUCCESS, CLOSED or ABNORMAL.
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
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from flask import Blueprint, Response, current_app, jsonify, request

from . import wechat_facts as facts

bp = Blueprint("pay", __name__)
KEYS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "pay_keys")
OUT_NO = re.compile(r"[A-Za-z0-9_\-|*]{6,64}")
_AUTH = re.compile(r'(\w+)="([^"]*)"')
#: Who signs answers and notifications: the WeChat Pay public key, a platform
#: certificate, or either at random (a merchant switching from one to the other).
SIGNERS = ("public_key", "certificate", "both")
#: What a new refund answers: accepted (PROCESSING, as WeChat usually does) or done at once.
REFUND_ANSWERS = ("PROCESSING", "SUCCESS")
#: Where a refund may go from PROCESSING (ABNORMAL is not final: it can still end either way).
REFUND_MOVES = {
    "PROCESSING": ("SUCCESS", "CLOSED", "ABNORMAL"),
    "ABNORMAL": ("SUCCESS", "CLOSED"),
}
#: Refund notifications per state: event_type and summary.
REFUND_EVENTS = {
    "SUCCESS": ("REFUND.SUCCESS", "退款成功"),
    "CLOSED": ("REFUND.CLOSED", "退款关闭"),
    "ABNORMAL": ("REFUND.ABNORMAL", "退款异常"),
}
_TRADE_STATE_DESC = {
    "NOTPAY": "未支付",
    "SUCCESS": "支付成功",
    "REFUND": "转入退款",
    "CLOSED": "已关闭",
}


def _read(name):
    with open(os.path.join(KEYS, name), "rb") as f:
        return f.read()


class PayState:
    """Orders, refunds, the merchant balance and who signs, under one lock."""

    def __init__(self, apiv3_key, signer="public_key", refund_answer="SUCCESS"):
        if signer not in SIGNERS or refund_answer not in REFUND_ANSWERS:
            raise ValueError(
                f"EMU_PAY_SIGNER is one of {SIGNERS}, EMU_PAY_REFUND_STATUS of {REFUND_ANSWERS}"
            )
        self.lock = threading.RLock()
        self.merchant_key = serialization.load_pem_public_key(_read("merchant.pub.pem"))
        certificate = x509.load_pem_x509_certificate(_read("platform_cert.pem"))
        # Serial as the merchant platform shows it: upper-case hex.
        self.certificate_serial = format(certificate.serial_number, "X")
        self.keys = {
            "public_key": (
                facts.EMULATOR_PLATFORM_KEY_ID,
                serialization.load_pem_private_key(_read("platform.key.pem"), None),
            ),
            "certificate": (
                self.certificate_serial,
                serialization.load_pem_private_key(_read("platform_cert.key.pem"), None),
            ),
        }
        self.apiv3_key = apiv3_key
        self.initial = {"signer": signer, "refund_answer": refund_answer}
        self.reset()

    def reset(self):
        """Forget orders, refunds and notifications; back to the configured signer."""
        with self.lock:
            self.orders = {}
            self.refunds = {}
            self.balance = {"unsettled": 0, "available": 100_000}
            self.notifications = []
            self.signer = self.initial["signer"]
            self.refund_answer = self.initial["refund_answer"]

    def signing_key(self):
        """Return (serial, private key) for the next answer or notification."""
        with self.lock:
            signer = self.signer
        if signer == "both":
            signer = secrets.choice(("public_key", "certificate"))
        return self.keys[signer]

    def describe_signer(self):
        """Return the signer setting and the serials each signer sends."""
        with self.lock:
            return {
                "signer": self.signer,
                "serials": {name: serial for name, (serial, _) in self.keys.items()},
            }


def pay_state():
    """Return the running emulator's PayState."""
    return current_app.extensions["wxemu.pay"]


def _signed_headers(body_text):
    timestamp, nonce = str(int(time.time())), secrets.token_hex(16)
    serial, key = pay_state().signing_key()
    message = f"{timestamp}\n{nonce}\n{body_text}\n".encode()
    raw = key.sign(message, padding.PKCS1v15(), hashes.SHA256())
    return {
        "Wechatpay-Timestamp": timestamp,
        "Wechatpay-Nonce": nonce,
        "Wechatpay-Serial": serial,
        "Wechatpay-Signature": base64.b64encode(raw).decode(),
    }


def answer(payload, status=200):
    """A signed JSON answer, as WeChat Pay sends every answer."""
    text = json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
    response = Response(text, status=status, mimetype="application/json")
    response.headers.update(_signed_headers(text))
    return response


def no_content():
    """A signed 204 answer (the signature covers an empty body)."""
    response = Response(status=204)
    response.headers.update(_signed_headers(""))
    return response


def fail(status, code, message):
    """A signed error answer: {"code", "message"}."""
    return answer({"code": code, "message": message}, status)


@bp.before_request
def check_merchant_signature():
    """Refuse requests not signed by the merchant key (WeChat Pay's 401 SIGN_ERROR)."""
    if not request.path.startswith("/v3/"):
        return None
    header = request.headers.get("Authorization", "")
    if not header.startswith(facts.PAY_AUTH_SCHEMA + " "):
        return fail(401, "SIGN_ERROR", "Authorization 缺失或格式错误")
    fields = dict(_AUTH.findall(header))
    if fields.get("mchid") != facts.EMULATOR_MCHID:
        return fail(401, "SIGN_ERROR", "商户号不存在")
    if fields.get("serial_no") != facts.EMULATOR_MERCHANT_SERIAL:
        return fail(401, "SIGN_ERROR", "商户证书序列号错误")
    timestamp = fields.get("timestamp", "")
    if not timestamp.isdigit() or abs(time.time() - int(timestamp)) > facts.PAY_MAX_SKEW:
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


@bp.post(facts.PAY_JSAPI)
def jsapi():
    data = _body()
    amount = (data.get("amount") or {}).get("total")
    openid = (data.get("payer") or {}).get("openid")
    out_trade_no = data.get("out_trade_no", "")
    if (
        data.get("mchid") != facts.EMULATOR_MCHID
        or data.get("appid") not in facts.EMULATOR_ACCOUNTS
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
        if order and order["trade_state"] == "CLOSED":
            return fail(400, "ORDER_CLOSED", "订单已关闭")
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
        "mchid": facts.EMULATOR_MCHID,
        "out_trade_no": order["out_trade_no"],
        "transaction_id": order["transaction_id"],
        "trade_type": "JSAPI",
        "trade_state": order["trade_state"],
        "trade_state_desc": _TRADE_STATE_DESC[order["trade_state"]],
        "success_time": order["success_time"],
        "payer": {"openid": order["openid"]},
        "amount": {"total": order["total"], "payer_total": order["total"], "currency": "CNY"},
    }


@bp.post("/v3/pay/transactions/out-trade-no/<out_trade_no>/close")
def close(out_trade_no):
    """Close an unpaid order (204); a closed order can no longer be paid."""
    data = _body()
    state = pay_state()
    if data.get("mchid") != facts.EMULATOR_MCHID:
        return fail(400, "PARAM_ERROR", "mchid 与订单不一致")
    with state.lock:
        order = state.orders.get(out_trade_no)
        if order is None:
            return fail(404, "ORDER_NOT_EXIST", "订单不存在")
        if order["trade_state"] in ("SUCCESS", "REFUND"):
            return fail(400, "ORDERPAID", "订单已支付")
        order["trade_state"] = "CLOSED"
    return no_content()


def _now_rfc3339():
    return time.strftime("%Y-%m-%dT%H:%M:%S+08:00", time.localtime())


def refund_body(record):
    """Return a refund as WeChat Pay's refund answers and queries show it."""
    body = {
        "refund_id": record["refund_id"],
        "out_refund_no": record["out_refund_no"],
        "transaction_id": record["transaction_id"],
        "out_trade_no": record["out_trade_no"],
        "channel": "ORIGINAL",
        "user_received_account": "支付用户零钱",
    }
    if record["status"] == "SUCCESS":
        body["success_time"] = record["success_time"]
    body.update(
        create_time=record["create_time"],
        status=record["status"],
        funds_account=record["funds_account"],
        amount={
            "total": record["total"],
            "refund": record["refund"],
            "payer_total": record["total"],
            "payer_refund": record["refund"],
            "settlement_refund": record["refund"],
            "settlement_total": record["total"],
            "discount_refund": 0,
            "currency": "CNY",
        },
        promotion_detail=[],
    )
    return body


def refund_resource(record):
    """Return the decrypted resource of a refund notification (WeChat Pay's fields)."""
    resource = {
        "mchid": facts.EMULATOR_MCHID,
        "out_trade_no": record["out_trade_no"],
        "transaction_id": record["transaction_id"],
        "out_refund_no": record["out_refund_no"],
        "refund_id": record["refund_id"],
        "refund_status": record["status"],
    }
    if record["status"] == "SUCCESS":
        resource["success_time"] = record["success_time"]
    resource.update(
        user_received_account="支付用户零钱",
        amount={
            "total": record["total"],
            "refund": record["refund"],
            "payer_total": record["total"],
            "payer_refund": record["refund"],
        },
    )
    return resource


def notify_refund(record):
    """Send the refund notification of *record*'s state to its notify_url (if it has one)."""
    if not record.get("notify_url") or record["status"] not in REFUND_EVENTS:
        return None
    event_type, summary = REFUND_EVENTS[record["status"]]
    return _notify(record["notify_url"], event_type, summary, refund_resource(record))


@bp.post(facts.PAY_REFUNDS)
def refund():
    data = _body()
    state = pay_state()
    amount = data.get("amount") or {}
    out_refund_no = data.get("out_refund_no", "")
    funds = data.get("funds_account")
    with state.lock:
        if out_refund_no in state.refunds:  # the same request again: the same refund
            return answer(refund_body(state.refunds[out_refund_no]))
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
        # Accepted: the money leaves the balance now, whatever the refund's outcome.
        state.balance[account] -= refund_fen
        order["refunded"] += refund_fen
        order["trade_state"] = "REFUND"
        now = _now_rfc3339()
        record = state.refunds[out_refund_no] = {
            "refund_id": "50" + secrets.token_hex(14),
            "out_refund_no": out_refund_no,
            "transaction_id": order["transaction_id"],
            "out_trade_no": order["out_trade_no"],
            "status": state.refund_answer,
            "funds_account": "AVAILABLE" if funds == "AVAILABLE" else "UNSETTLED",
            "account": account,
            "create_time": now,
            "success_time": now if state.refund_answer == "SUCCESS" else None,
            "refund": refund_fen,
            "total": order["total"],
            "notify_url": data.get("notify_url") or None,
        }
        body = refund_body(record)
    if record["status"] == "SUCCESS":
        notify_refund(record)
    return answer(body)


@bp.get(facts.PAY_REFUNDS + "/<out_refund_no>")
def query_refund(out_refund_no):
    """Answer a refund's current state (查询单笔退款)."""
    record = pay_state().refunds.get(out_refund_no)
    if record is None:
        return fail(404, "RESOURCE_NOT_EXISTS", "退款单不存在")
    return answer(refund_body(record))


def move_refund(out_refund_no, status):
    """Move a refund to *status*; return (record, None) or (None, error message)."""
    state = pay_state()
    with state.lock:
        record = state.refunds.get(out_refund_no)
        if record is None:
            return None, "no such refund"
        allowed = REFUND_MOVES.get(record["status"], ())
        if status not in allowed:
            return None, f"a {record['status']} refund cannot become {status}"
        record["status"] = status
        if status == "SUCCESS":
            record["success_time"] = _now_rfc3339()
        elif status == "CLOSED":
            # Closed: the refund failed, the money goes back where it came from.
            order = state.orders[record["out_trade_no"]]
            state.balance[record["account"]] += record["refund"]
            order["refunded"] -= record["refund"]
            if order["refunded"] == 0:
                order["trade_state"] = "SUCCESS"
        return dict(record), None


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
    """POST a signed notification; record it and return the status (or the error's name)."""
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
    return outcome


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
        if order["trade_state"] == "CLOSED":
            return jsonify({"ok": False, "errMsg": "chooseWXPay:fail order closed"})
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
    if order is None or order["trade_state"] in ("NOTPAY", "CLOSED"):
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


@bp.route("/_emu/pay/signer", methods=["GET", "POST"])
def signer():
    """Read or set who signs answers and notifications (public_key, certificate, both)."""
    state = pay_state()
    if request.method == "POST":
        choice = (request.get_json(force=True, silent=True) or {}).get("signer")
        if choice not in SIGNERS:
            return jsonify({"error": f"signer must be one of {', '.join(SIGNERS)}"}), 400
        with state.lock:
            state.signer = choice
    return jsonify(state.describe_signer())


@bp.route("/_emu/pay/refund-mode", methods=["GET", "POST"])
def refund_mode():
    """Read or set what new refunds answer: PROCESSING (later moved) or SUCCESS at once."""
    state = pay_state()
    if request.method == "POST":
        status = (request.get_json(force=True, silent=True) or {}).get("status")
        if status not in REFUND_ANSWERS:
            return jsonify({"error": f"status must be one of {', '.join(REFUND_ANSWERS)}"}), 400
        with state.lock:
            state.refund_answer = status
    return jsonify({"status": state.refund_answer})


@bp.get("/_emu/pay/refunds")
def list_refunds():
    """Every refund as the query API shows it, oldest first."""
    state = pay_state()
    with state.lock:
        return jsonify([refund_body(r) for r in state.refunds.values()])


@bp.post("/_emu/pay/refunds/<out_refund_no>")
def move(out_refund_no):
    """Move a refund to SUCCESS, CLOSED or ABNORMAL, notifying unless ``"notify": false``."""
    data = request.get_json(force=True, silent=True) or {}
    notify = data.get("notify", True)
    if not isinstance(notify, bool):
        return jsonify({"error": "notify must be true or false"}), 400
    record, error = move_refund(out_refund_no, data.get("status"))
    if error:
        return jsonify({"error": error}), 404 if error == "no such refund" else 400
    sent = notify_refund(record) if notify else None
    return jsonify({"refund": refund_body(record), "notification": sent})


@bp.post("/_emu/pay/refunds/<out_refund_no>/notify")
def renotify(out_refund_no):
    """Send a refund's notification for its current state again (a late or repeated one)."""
    record = pay_state().refunds.get(out_refund_no)
    if record is None or record["status"] not in REFUND_EVENTS or not record["notify_url"]:
        return jsonify({"error": "no notification to send for this refund"}), 404
    return jsonify({"notification": notify_refund(dict(record))})


@bp.post("/_emu/pay/reset")
def reset():
    pay_state().reset()
    return jsonify({"ok": True})
