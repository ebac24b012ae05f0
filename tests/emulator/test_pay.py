"""WeChat Pay: who signs (public key, platform certificate, both), refund states, order close."""

import base64
import json
import os
import secrets
import time

import pytest
import requests
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

import wxsite.emulator
from wxsite.wechat import protocol

from .conftest import APPID

KEYS = os.path.join(os.path.dirname(wxsite.emulator.__file__), "pay_keys")
NOTIFY_URL = "http://127.0.0.1:9/pay/notify"  # nobody listens: notifications are only recorded


def _read(name):
    with open(os.path.join(KEYS, name), "rb") as f:
        return f.read()


MERCHANT_KEY = serialization.load_pem_private_key(_read("merchant.key.pem"), None)
CERTIFICATE = x509.load_pem_x509_certificate(_read("platform_cert.pem"))
CERT_SERIAL = format(CERTIFICATE.serial_number, "X")
VERIFIERS = {
    protocol.EMULATOR_PLATFORM_KEY_ID: serialization.load_pem_public_key(_read("platform.pub.pem")),
    CERT_SERIAL: CERTIFICATE.public_key(),
}


def sign(message):
    raw = MERCHANT_KEY.sign(message.encode(), padding.PKCS1v15(), hashes.SHA256())
    return base64.b64encode(raw).decode()


class Merchant:
    """The fake merchant's side of API v3, written here from WeChat Pay's documentation."""

    def __init__(self, emulator):
        self.emulator = emulator

    def call(self, method, path, body=None, signed=True):
        text = "" if body is None else json.dumps(body, ensure_ascii=False)
        headers = {"Accept": "application/json", "Content-Type": "application/json"}
        if signed:
            ts, nonce = str(int(time.time())), secrets.token_hex(16)
            signature = sign(f"{method}\n{path}\n{ts}\n{nonce}\n{text}\n")
            headers["Authorization"] = (
                f'{protocol.PAY_AUTH_SCHEMA} mchid="{protocol.EMULATOR_MCHID}",'
                f'nonce_str="{nonce}",signature="{signature}",timestamp="{ts}",'
                f'serial_no="{protocol.EMULATOR_MERCHANT_SERIAL}"'
            )
        return requests.request(
            method,
            self.emulator.url(path),
            data=text.encode() or None,
            headers=headers,
            timeout=10,
        )

    def order(self, out_trade_no, total=1200):
        body = {
            "appid": APPID,
            "mchid": protocol.EMULATOR_MCHID,
            "description": "测试商品",
            "out_trade_no": out_trade_no,
            "notify_url": NOTIFY_URL,
            "amount": {"total": total, "currency": "CNY"},
            "payer": {"openid": "o" + "x" * 27},
        }
        return self.call("POST", protocol.PAY_JSAPI, body)

    def pay(self, prepay_id):
        params = {
            "appId": APPID,
            "timeStamp": str(int(time.time())),
            "nonceStr": secrets.token_hex(8),
            "package": f"prepay_id={prepay_id}",
            "signType": "RSA",
        }
        message = f"{APPID}\n{params['timeStamp']}\n{params['nonceStr']}\n{params['package']}\n"
        params["paySign"] = sign(message)
        return self.emulator.post("/_emu/pay/confirm", json=params).json()

    def paid_order(self, out_trade_no, total=1200):
        prepay_id = self.order(out_trade_no, total).json()["prepay_id"]
        assert self.pay(prepay_id)["ok"]

    def refund(self, out_trade_no, out_refund_no, refund=500, total=1200):
        body = {
            "out_trade_no": out_trade_no,
            "out_refund_no": out_refund_no,
            "notify_url": NOTIFY_URL,
            "amount": {"refund": refund, "total": total, "currency": "CNY"},
        }
        return self.call("POST", protocol.PAY_REFUNDS, body)


def verified_serial(response):
    """Return the Wechatpay-Serial of a correctly signed answer (raise if it is not)."""
    return verified(response.headers, response.text)


def verified(headers, body):
    serial = headers["Wechatpay-Serial"]
    message = f"{headers['Wechatpay-Timestamp']}\n{headers['Wechatpay-Nonce']}\n{body}\n"
    VERIFIERS[serial].verify(
        base64.b64decode(headers["Wechatpay-Signature"]),
        message.encode(),
        padding.PKCS1v15(),
        hashes.SHA256(),
    )
    return serial


def notifications(emulator):
    return emulator.get("/_emu/pay/notifications").json()


def resource_of(notification):
    body = json.loads(notification["body"])
    res = body["resource"]
    plain = AESGCM(protocol.EMULATOR_APIV3_KEY.encode()).decrypt(
        res["nonce"].encode(), base64.b64decode(res["ciphertext"]), res["associated_data"].encode()
    )
    return body, json.loads(plain)


@pytest.fixture
def merchant(emulator):
    return Merchant(emulator)


def set_signer(emulator, signer):
    r = emulator.post("/_emu/pay/signer", json={"signer": signer})
    assert r.status_code == 200, r.text
    return r.json()


# -- who signs ----------------------------------------------------------------------------


def test_public_key_signs_by_default(emulator, merchant):
    r = merchant.order("ORDER-PK-1")
    assert r.status_code == 200
    assert verified_serial(r) == protocol.EMULATOR_PLATFORM_KEY_ID
    shown = emulator.get("/_emu/pay/signer").json()
    assert shown == {
        "signer": "public_key",
        "serials": {"public_key": protocol.EMULATOR_PLATFORM_KEY_ID, "certificate": CERT_SERIAL},
    }


def test_certificate_signs_answers_and_notifications(emulator, merchant):
    set_signer(emulator, "certificate")
    r = merchant.order("ORDER-CERT-1")
    assert verified_serial(r) == CERT_SERIAL
    assert merchant.pay(r.json()["prepay_id"])["ok"]
    (sent,) = notifications(emulator)
    assert verified(sent["headers"], sent["body"]) == CERT_SERIAL
    headers = dict(r.headers, **{"Wechatpay-Serial": protocol.EMULATOR_PLATFORM_KEY_ID})
    with pytest.raises(InvalidSignature):
        # The public key does not verify what the certificate's key signed.
        verified(headers, r.text)


def test_both_signers_at_random_during_a_switch(emulator, merchant):
    set_signer(emulator, "both")
    serials = {verified_serial(merchant.order(f"ORDER-BOTH-{i:02d}")) for i in range(40)}
    assert serials == {protocol.EMULATOR_PLATFORM_KEY_ID, CERT_SERIAL}


def test_certificate_is_self_signed_and_current():
    assert CERTIFICATE.issuer == CERTIFICATE.subject
    assert len(CERT_SERIAL) == 40
    assert (
        CERTIFICATE.not_valid_before_utc.year == 2025
        and CERTIFICATE.not_valid_after_utc.year == 2045
    )


def test_signer_setting_validation_and_reset(emulator, make_emulator):
    assert emulator.post("/_emu/pay/signer", json={"signer": "nobody"}).status_code == 400
    set_signer(emulator, "certificate")
    emulator.control.reset()
    assert emulator.get("/_emu/pay/signer").json()["signer"] == "public_key"
    other = make_emulator(EMU_PAY_SIGNER="certificate")
    assert verified_serial(Merchant(other).order("ORDER-CFG-1")) == CERT_SERIAL


# -- refunds: PROCESSING, then SUCCESS / CLOSED / ABNORMAL -------------------------------


def processing(emulator):
    r = emulator.post("/_emu/pay/refund-mode", json={"status": "PROCESSING"})
    assert r.json() == {"status": "PROCESSING"}


def test_refund_is_processing_then_success_with_a_notification(emulator, merchant):
    processing(emulator)
    merchant.paid_order("ORDER-RF-1")
    r = merchant.refund("ORDER-RF-1", "REFUND-1")
    assert r.status_code == 200 and verified_serial(r)
    body = r.json()
    assert body["status"] == "PROCESSING" and "success_time" not in body
    assert list(body) == [
        "refund_id",
        "out_refund_no",
        "transaction_id",
        "out_trade_no",
        "channel",
        "user_received_account",
        "create_time",
        "status",
        "funds_account",
        "amount",
        "promotion_detail",
    ]
    assert body["amount"]["refund"] == 500 and body["amount"]["payer_refund"] == 500
    assert body["funds_account"] == "UNSETTLED"
    assert [n["event_type"] for n in notifications(emulator)] == ["TRANSACTION.SUCCESS"]
    query = merchant.call("GET", f"{protocol.PAY_REFUNDS}/REFUND-1")
    assert query.status_code == 200 and verified_serial(query)
    assert query.json()["status"] == "PROCESSING"

    moved = emulator.post("/_emu/pay/refunds/REFUND-1", json={"status": "SUCCESS"}).json()
    assert moved["refund"]["status"] == "SUCCESS" and moved["refund"]["success_time"]
    sent = notifications(emulator)[-1]
    assert sent["event_type"] == "REFUND.SUCCESS" and verified(sent["headers"], sent["body"])
    envelope, resource = resource_of(sent)
    assert envelope["summary"] == "退款成功" and envelope["resource"]["original_type"] == "refund"
    assert resource["refund_status"] == "SUCCESS" and resource["mchid"] == protocol.EMULATOR_MCHID
    assert resource["out_refund_no"] == "REFUND-1" and resource["amount"]["refund"] == 500
    assert set(resource) == {
        "mchid",
        "out_trade_no",
        "transaction_id",
        "out_refund_no",
        "refund_id",
        "refund_status",
        "success_time",
        "user_received_account",
        "amount",
    }
    query = merchant.call("GET", f"{protocol.PAY_REFUNDS}/REFUND-1").json()
    assert query["status"] == "SUCCESS" and query["success_time"] == moved["refund"]["success_time"]


def test_closed_refund_gives_the_money_back(emulator, merchant):
    processing(emulator)
    merchant.paid_order("ORDER-RF-2")
    before = emulator.get("/_emu/pay/balance").json()
    merchant.refund("ORDER-RF-2", "REFUND-2")
    assert emulator.get("/_emu/pay/balance").json()["unsettled"] == before["unsettled"] - 500
    moved = emulator.post("/_emu/pay/refunds/REFUND-2", json={"status": "CLOSED"}).json()
    assert moved["refund"]["status"] == "CLOSED" and "success_time" not in moved["refund"]
    assert emulator.get("/_emu/pay/balance").json() == before
    _, resource = resource_of(notifications(emulator)[-1])
    assert resource["refund_status"] == "CLOSED" and "success_time" not in resource
    order = merchant.call(
        "GET", f"/v3/pay/transactions/out-trade-no/ORDER-RF-2?mchid={protocol.EMULATOR_MCHID}"
    )
    assert order.json()["trade_state"] == "SUCCESS"
    # The same out_refund_no is the same (closed) refund.
    assert merchant.refund("ORDER-RF-2", "REFUND-2").json()["status"] == "CLOSED"


def test_abnormal_refund_can_still_succeed_and_notifications_can_be_withheld(emulator, merchant):
    processing(emulator)
    merchant.paid_order("ORDER-RF-3")
    merchant.refund("ORDER-RF-3", "REFUND-3")
    abnormal = emulator.post("/_emu/pay/refunds/REFUND-3", json={"status": "ABNORMAL"}).json()
    assert abnormal["notification"] is not None
    body, resource = resource_of(notifications(emulator)[-1])
    assert body["event_type"] == "REFUND.ABNORMAL" and resource["refund_status"] == "ABNORMAL"
    count = len(notifications(emulator))
    quiet = emulator.post("/_emu/pay/refunds/REFUND-3", json={"status": "SUCCESS", "notify": False})
    assert quiet.json()["notification"] is None and len(notifications(emulator)) == count
    assert merchant.call("GET", f"{protocol.PAY_REFUNDS}/REFUND-3").json()["status"] == "SUCCESS"
    # The lost notification, sent late.
    assert emulator.post("/_emu/pay/refunds/REFUND-3/notify").status_code == 200
    assert resource_of(notifications(emulator)[-1])[1]["refund_status"] == "SUCCESS"


def test_refund_moves_that_wechat_never_makes_are_refused(emulator, merchant):
    merchant.paid_order("ORDER-RF-4")
    assert merchant.refund("ORDER-RF-4", "REFUND-4").json()["status"] == "SUCCESS"  # default
    r = emulator.post("/_emu/pay/refunds/REFUND-4", json={"status": "CLOSED"})
    assert r.status_code == 400
    assert (
        emulator.post("/_emu/pay/refunds/NOPE-NOPE", json={"status": "SUCCESS"}).status_code == 404
    )
    assert emulator.post("/_emu/pay/refund-mode", json={"status": "CLOSED"}).status_code == 400
    assert emulator.get("/_emu/pay/refunds").json()[0]["out_refund_no"] == "REFUND-4"


def test_refund_query_of_an_unknown_refund_and_without_a_signature(emulator, merchant):
    r = merchant.call("GET", f"{protocol.PAY_REFUNDS}/NO-SUCH-REFUND")
    assert r.status_code == 404 and r.json()["code"] == "RESOURCE_NOT_EXISTS"
    assert verified_serial(r)
    r = merchant.call("GET", f"{protocol.PAY_REFUNDS}/NO-SUCH-REFUND", signed=False)
    assert r.status_code == 401 and r.json()["code"] == "SIGN_ERROR"


def test_reset_goes_back_to_refunds_succeeding_at_once(emulator):
    processing(emulator)
    emulator.control.reset()
    assert emulator.get("/_emu/pay/refund-mode").json() == {"status": "SUCCESS"}


# -- closing an order ---------------------------------------------------------------------


def close(merchant, out_trade_no, mchid=protocol.EMULATOR_MCHID):
    path = f"/v3/pay/transactions/out-trade-no/{out_trade_no}/close"
    return merchant.call("POST", path, {"mchid": mchid})


def test_closed_order_can_no_longer_be_paid(emulator, merchant):
    prepay_id = merchant.order("ORDER-CL-1").json()["prepay_id"]
    r = close(merchant, "ORDER-CL-1")
    assert r.status_code == 204 and r.content == b""
    assert verified_serial(r) == protocol.EMULATOR_PLATFORM_KEY_ID  # signed over an empty body
    query = merchant.call(
        "GET", f"/v3/pay/transactions/out-trade-no/ORDER-CL-1?mchid={protocol.EMULATOR_MCHID}"
    ).json()
    assert query["trade_state"] == "CLOSED" and query["trade_state_desc"] == "已关闭"
    assert merchant.pay(prepay_id) == {"ok": False, "errMsg": "chooseWXPay:fail order closed"}
    again = merchant.order("ORDER-CL-1")
    assert again.status_code == 400 and again.json()["code"] == "ORDER_CLOSED"
    assert close(merchant, "ORDER-CL-1").status_code == 204  # closing twice is fine
    assert emulator.post("/_emu/pay/notify/ORDER-CL-1").status_code == 404


def test_paid_or_unknown_orders_cannot_be_closed(emulator, merchant):
    merchant.paid_order("ORDER-CL-2")
    r = close(merchant, "ORDER-CL-2")
    assert r.status_code == 400 and r.json()["code"] == "ORDERPAID"
    assert close(merchant, "ORDER-CL-404").status_code == 404
    assert close(merchant, "ORDER-CL-2", mchid="1230000109").status_code == 400
    path = "/v3/pay/transactions/out-trade-no/ORDER-CL-2/close"
    assert merchant.call("POST", path, {"mchid": "x"}, signed=False).status_code == 401


def test_control_wraps_the_pay_controls(emulator, merchant):
    control = emulator.control
    assert control.pay_signer("both")["signer"] == "both"
    assert control.refund_mode("PROCESSING") == {"status": "PROCESSING"}
    merchant.paid_order("ORDER-CT-1")
    merchant.refund("ORDER-CT-1", "REFUND-CT-1")
    assert control.pay_refunds()[0]["status"] == "PROCESSING"
    assert control.move_refund("REFUND-CT-1", "SUCCESS", notify=False)["notification"] is None
    control.renotify_refund("REFUND-CT-1")
    assert control.pay_notifications()[-1]["event_type"] == "REFUND.SUCCESS"
