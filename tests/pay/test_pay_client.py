"""The Pay API v3 client against the emulator: signatures both ways, refunds, TLS."""

import base64
import datetime
import ipaddress
import json
import socket
import threading
import time

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.x509.oid import NameOID
from werkzeug.serving import make_server

from pay_helpers import emulator_pay_client
from wxsite.emulator import create_emulator
from wxsite.wechat import pay, protocol

OPENID = "oEmulatorOpenid000000000000"
NOWHERE = "http://127.0.0.1:9/notify"  # nobody listens: the emulator records the attempt


@pytest.fixture
def pay_client(emu):
    return emulator_pay_client(emu.base_url)


def paid_order(pay_client, emu, no="T20261124001", total=1200):
    prepay = pay_client.jsapi_order("一杯咖啡", no, total, OPENID, NOWHERE)
    params = pay_client.page_params(prepay)
    assert requests.post(emu.base_url + "/_emu/pay/confirm", json=params).json()["ok"]
    return no


def test_order_page_params_and_payment(pay_client, emu):
    prepay = pay_client.jsapi_order("一杯咖啡", "T20261124001", 1200, OPENID, NOWHERE)
    assert prepay.startswith("wx")
    params = pay_client.page_params(prepay)
    assert params["package"] == f"prepay_id={prepay}" and params["signType"] == "RSA"
    assert pay_client.query("T20261124001")["trade_state"] == "NOTPAY"
    forged = {**params, "package": "prepay_id=wxforged"}
    assert not requests.post(emu.base_url + "/_emu/pay/confirm", json=forged).json()["ok"]
    assert requests.post(emu.base_url + "/_emu/pay/confirm", json=params).json()["ok"]
    assert pay_client.query("T20261124001")["trade_state"] == "SUCCESS"


def test_notification_verifies_and_decrypts(pay_client, emu):
    no = paid_order(pay_client, emu)
    sent = requests.get(emu.base_url + "/_emu/pay/notifications").json()[-1]
    data = pay_client.parse_notification(sent["headers"], sent["body"].encode())
    assert data["event_type"] == "TRANSACTION.SUCCESS"
    assert data["resource"]["out_trade_no"] == no and data["resource"]["trade_state"] == "SUCCESS"


def test_tampered_and_stale_notifications_are_refused(pay_client, emu):
    paid_order(pay_client, emu)
    sent = requests.get(emu.base_url + "/_emu/pay/notifications").json()[-1]
    body = sent["body"].replace("TRANSACTION.SUCCESS", "TRANSACTION.FAILED")
    with pytest.raises(pay.BadNotification):
        pay_client.parse_notification(sent["headers"], body.encode())
    with pytest.raises(pay.BadNotification):
        pay_client.parse_notification(
            {**sent["headers"], "Wechatpay-Serial": "PUB_KEY_ID_OTHER"}, sent["body"]
        )
    late = emulator_pay_client(
        emu.base_url, clock=lambda: int(sent["headers"]["Wechatpay-Timestamp"]) + 301
    )
    with pytest.raises(pay.BadNotification):
        late.parse_notification(sent["headers"], sent["body"])
    resource = json.loads(sent["body"])
    resource["resource"]["ciphertext"] = resource["resource"]["ciphertext"][::-1]
    # Re-signing is impossible without the platform key, so a changed resource fails either way.
    with pytest.raises(pay.BadNotification):
        pay_client.parse_notification(sent["headers"], json.dumps(resource))


def test_unsigned_or_wrongly_signed_requests_are_refused(emu):
    response = requests.post(emu.base_url + protocol.PAY_JSAPI, json={})
    assert response.status_code == 401 and response.json()["code"] == "SIGN_ERROR"
    from cryptography.hazmat.primitives.asymmetric import rsa as _rsa

    imposter = emulator_pay_client(emu.base_url)
    imposter._key = _rsa.generate_private_key(public_exponent=65537, key_size=2048)
    with pytest.raises(pay.PayError) as info:
        imposter.jsapi_order("x", "T20261124009", 1, OPENID, NOWHERE)
    assert info.value.code == "SIGN_ERROR" and info.value.status == 401


def test_refund_and_over_refund_and_idempotency(pay_client, emu):
    no = paid_order(pay_client, emu, total=1000)
    first = pay_client.refund(no, "R20261124001", 400, 1000)
    assert first["status"] == "SUCCESS" and first["funds_account"] == "UNSETTLED"
    again = pay_client.refund(no, "R20261124001", 400, 1000)
    assert again["refund_id"] == first["refund_id"]
    with pytest.raises(pay.PayError) as info:
        pay_client.refund(no, "R20261124002", 700, 1000)
    assert info.value.code == "INVALID_REQUEST"
    assert requests.get(emu.base_url + "/_emu/pay/balance").json()["unsettled"] == 600


def test_not_enough_unsettled_funds(pay_client, emu):
    no = paid_order(pay_client, emu, total=1000)
    requests.post(emu.base_url + "/_emu/pay/balance", json={"unsettled": 100, "available": 5000})
    with pytest.raises(pay.PayError) as info:
        pay_client.refund(no, "R20261124003", 500, 1000)
    assert info.value.code == "NOT_ENOUGH"
    done = pay_client.refund(no, "R20261124003", 500, 1000, funds_account="AVAILABLE")
    assert done["funds_account"] == "AVAILABLE"
    assert requests.get(emu.base_url + "/_emu/pay/balance").json() == {
        "unsettled": 100,
        "available": 4500,
    }


def _self_signed(tmp_path):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "wxsite test CA")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "ca.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    return str(cert_path), str(key_path)


def test_tls_is_verified_and_a_private_ca_bundle_is_honoured(tmp_path):
    cert, key = _self_signed(tmp_path)
    server = make_server("127.0.0.1", 0, create_emulator(), threaded=True, ssl_context=(cert, key))
    threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    ).start()
    base = f"https://127.0.0.1:{server.server_port}"
    try:
        with pytest.raises(pay.PayError) as info:
            emulator_pay_client(base).jsapi_order("x", "T20261124010", 1, OPENID, NOWHERE)
        assert info.value.unavailable and "TLS" in info.value.errmsg
        trusted = emulator_pay_client(base, ca_bundle=cert)
        assert trusted.jsapi_order("x", "T20261124010", 1, OPENID, NOWHERE).startswith("wx")
    finally:
        server.shutdown()


@pytest.mark.parametrize("timestamp", ["²", "1²3", "9" * 400, "9" * 5000])
def test_timestamps_that_are_not_ascii_seconds_are_a_bad_notification(pay_client, emu, timestamp):
    # str.isdigit() takes "²"; int() then fails, or makes a number no float compares with.
    paid_order(pay_client, emu)
    sent = requests.get(emu.base_url + "/_emu/pay/notifications").json()[-1]
    with pytest.raises(pay.BadNotification):
        pay_client.parse_notification({**sent["headers"], "Wechatpay-Timestamp": timestamp}, b"{}")


@pytest.mark.parametrize(
    "resource",
    [
        {"nonce": 5, "ciphertext": "AAAA"},
        {"nonce": "abcdef012345", "ciphertext": "AAAA", "associated_data": ["x"]},
    ],
)
def test_resource_fields_that_are_not_strings_are_a_bad_notification(resource):
    with pytest.raises(pay.BadNotification):
        pay.decrypt(protocol.EMULATOR_APIV3_KEY, resource)


@pytest.mark.parametrize(
    "plain", ["[1]", '"x"', '{"out_trade_no": ["T1"]}', '{"amount": 5}', '{"payer": "o"}']
)
def test_a_decrypted_resource_of_the_wrong_shape_is_a_bad_notification(plain):
    nonce = "abcdef012345"
    data = AESGCM(protocol.EMULATOR_APIV3_KEY.encode()).encrypt(
        nonce.encode(), plain.encode(), b"transaction"
    )
    resource = {
        "nonce": nonce,
        "ciphertext": base64.b64encode(data).decode(),
        "associated_data": "transaction",
    }
    with pytest.raises(pay.BadNotification):
        pay.decrypt(protocol.EMULATOR_APIV3_KEY, resource)


@pytest.fixture
def dripping_server():
    """A server that answers one byte every 0.2 s (the emulator's faults cover WeChat's API)."""
    answer = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 40\r\n\r\n"
    answer += b'{"out_trade_no": "T20261124009", "x": 1}'
    listener = socket.create_server(("127.0.0.1", 0))
    sent = []

    def serve():
        conn, _ = listener.accept()
        conn.recv(65536)
        try:
            for byte in answer:
                conn.sendall(bytes([byte]))
                sent.append(byte)
                time.sleep(0.2)
        except OSError:
            pass  # the caller hung up: what the test wants
        conn.close()

    threading.Thread(target=serve, daemon=True).start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}", answer, sent
    listener.close()


def test_a_dripping_answer_ends_at_the_calls_deadline(dripping_server):
    # Each byte comes well inside the read timeout; only the total budget can end the call
    # (the whole answer would take about 25 s).
    base, answer, sent = dripping_server
    client = emulator_pay_client(base, deadline=1.5)
    started = time.monotonic()
    with pytest.raises(pay.PayError) as raised:
        client.query("T20261124009")
    assert "unreachable" in str(raised.value)
    assert time.monotonic() - started < 1.5 + 4.0
    assert len(sent) < len(answer)
