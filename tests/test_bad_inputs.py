"""Crafted requests that used to end in a 500 (issue 11, item 7): each gets a clear 4xx."""

import base64
import json
import os
import time

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from werkzeug.exceptions import NotFound

from support import csrf_token
from wxsite.config import EMULATOR_PAY_KEYS
from wxsite.wechat import protocol

#: Deeper than Python's recursion limit, well under MAX_CONTENT_LENGTH.
NESTED = "[" * 50_000 + "]" * 50_000
NESTED_OBJECT = '{"a":' * 30_000 + "1" + "}" * 30_000
TOO_BIG = str(2**63)  # one past SQLite's largest INTEGER
HUGE = "9" * 40


@pytest.fixture
def token(logged_in, live):
    """A CSRF token of the logged-in session (so requests reach the views)."""
    return csrf_token(logged_in.get(live.url("/")).text)


def json_post(phone, url, body, token):
    return phone.post(
        url,
        data=body.encode() if isinstance(body, str) else body,
        headers={"Content-Type": "application/json", "X-CSRFToken": token},
    )


def assert_json_error(response, status=400):
    assert response.status_code == status, (response.status_code, response.text[:300])
    body = response.json()
    assert body["error"] and body["message"], body


@pytest.mark.parametrize("path", ["/upload", "/voice"])
@pytest.mark.parametrize("body", [NESTED, NESTED_OBJECT], ids=["array", "object"])
def test_deeply_nested_json_is_a_400(logged_in, live, token, path, body, caplog):
    response = json_post(logged_in, live.url(path), body, token)
    assert_json_error(response)
    assert "Traceback" not in caplog.text and "unhandled" not in caplog.text


BIND_BODIES = [
    NESTED,
    NESTED_OBJECT,
    "[1, 2]",
    '"alice"',
    "42",
    json.dumps({"username": 5, "password": "x"}),
    json.dumps({"username": {"a": 1}, "password": "x"}),
    json.dumps({"username": ["alice", 3], "password": [True]}),
]


@pytest.mark.parametrize("body", BIND_BODIES, ids=range(len(BIND_BODIES)))
def test_bind_with_a_json_body_is_a_400(logged_in, live, token, body, caplog):
    # The bind form reads form fields only: any JSON body is a form left empty.
    response = json_post(logged_in, live.url("/auth/bind"), body, token)
    assert response.status_code == 400 and "请填写用户名和密码" in response.text
    assert "Traceback" not in caplog.text and "unhandled" not in caplog.text


def test_after_json_bodies_the_bind_form_still_binds(logged_in, live, token, app):
    from wxsite import accounts, store

    with app.app_context():
        accounts.create(store.get_db(), "alice", "a long password")
    as_json = json.dumps({"username": "alice", "password": ["a long password"]})
    assert json_post(logged_in, live.url("/auth/bind"), as_json, token).status_code == 400
    response = logged_in.post(
        live.url("/auth/bind"),
        data={
            "csrf_token": token,
            "username": "alice",
            "password": "a long password",
            "next": "/healthz",
        },
    )
    assert response.status_code == 200 and response.url == live.url("/healthz")


@pytest.mark.parametrize("value", [TOO_BIG, HUGE])
@pytest.mark.parametrize(
    "method,template",
    [("GET", "/uploads/{}"), ("HEAD", "/uploads/{}"), ("GET", "/uploads/{}/play")]
    + [("POST", "/uploads/{}/delete")],
)
def test_ids_too_large_for_sqlite_are_a_404(logged_in, live, token, method, template, value):
    response = logged_in.request(
        method,
        live.url(template.format(value)),
        headers={"X-CSRFToken": token, "Accept": "application/json"},
    )
    assert response.status_code == 404, response.text[:300]
    if method != "HEAD":
        assert_json_error(response, 404)


def test_ids_are_ascii_digits_up_to_sqlites_largest_integer(app):
    adapter = app.url_map.bind("localhost")
    largest = 2**63 - 1
    assert adapter.match(f"/uploads/{largest}/play") == ("media.play", {"upload_id": largest})
    for path in (f"/uploads/{largest + 1}", "/uploads/\u0663", "/uploads/\uff11"):
        # ARABIC-INDIC THREE and FULLWIDTH ONE: int() would read both as numbers.
        with pytest.raises(NotFound):
            adapter.match(path)


# -- WeChat Pay notifications (no login: anyone can post them) ----------------------------


def sign(message):
    with open(os.path.join(EMULATOR_PAY_KEYS, "platform.key.pem"), "rb") as f:
        key = serialization.load_pem_private_key(f.read(), None)
    return base64.b64encode(
        key.sign(message.encode(), padding.PKCS1v15(), hashes.SHA256())
    ).decode()


def signed(body, timestamp=None, nonce="n0nce"):
    """Headers of ``body`` signed with the emulator's platform key, as WeChat Pay signs."""
    timestamp = str(int(time.time())) if timestamp is None else timestamp
    return {
        "Content-Type": "application/json",
        "Wechatpay-Timestamp": timestamp,
        "Wechatpay-Nonce": nonce,
        "Wechatpay-Serial": protocol.EMULATOR_PLATFORM_KEY_ID,
        "Wechatpay-Signature": sign(f"{timestamp}\n{nonce}\n{body}\n"),
    }


def encrypted(plain, associated="transaction", nonce="abcdef012345"):
    data = AESGCM(protocol.EMULATOR_APIV3_KEY.encode()).encrypt(
        nonce.encode(), plain.encode(), associated.encode()
    )
    return {
        "algorithm": "AEAD_AES_256_GCM",
        "ciphertext": base64.b64encode(data).decode(),
        "associated_data": associated,
        "nonce": nonce,
    }


NOTIFY_PATHS = ["/pay/notify", "/pay/refund-notify"]


@pytest.mark.parametrize("path", NOTIFY_PATHS)
@pytest.mark.parametrize("timestamp", ["²", "1²", "9" * 5000, "9" * 400])
def test_odd_timestamps_on_pay_notifications_are_refused(client, path, timestamp):
    body = json.dumps({"id": "x", "event_type": "TRANSACTION.SUCCESS", "resource": {}})
    headers = {
        "Wechatpay-Timestamp": timestamp,
        "Wechatpay-Nonce": "n",
        "Wechatpay-Serial": protocol.EMULATOR_PLATFORM_KEY_ID,
        "Wechatpay-Signature": "c2lnbmF0dXJl",
    }
    response = client.post(path, data=body, headers=headers, content_type="application/json")
    assert response.status_code == 401 and response.get_json()["code"] == "FAIL"


BAD_NOTIFICATIONS = {
    "nonce is a number": {
        "id": "1",
        "event_type": "TRANSACTION.SUCCESS",
        "resource": {"nonce": 5, "ciphertext": "AAAA", "associated_data": "transaction"},
    },
    "associated_data is a number": {
        "id": "1",
        "event_type": "TRANSACTION.SUCCESS",
        "resource": {"nonce": "abcdef012345", "ciphertext": "AAAA", "associated_data": 7},
    },
}


@pytest.mark.parametrize("path", NOTIFY_PATHS)
@pytest.mark.parametrize("name", list(BAD_NOTIFICATIONS))
def test_signed_notifications_of_the_wrong_shape_are_refused(client, app, path, name):
    body = json.dumps(BAD_NOTIFICATIONS[name])
    response = client.post(path, data=body, headers=signed(body))
    assert 400 <= response.status_code < 500, response.get_data(as_text=True)[:300]
    assert response.get_json()["code"] == "FAIL"


@pytest.mark.parametrize("path", NOTIFY_PATHS)
@pytest.mark.parametrize(
    "plain",
    [
        "[1, 2]",
        '"SUCCESS"',
        "null",
        json.dumps({"out_trade_no": ["x"], "mchid": protocol.EMULATOR_MCHID}),
        json.dumps({"out_refund_no": {"a": 1}, "mchid": protocol.EMULATOR_MCHID, "status": "X"}),
        json.dumps({"out_trade_no": "T1", "mchid": protocol.EMULATOR_MCHID, "amount": 5}),
        json.dumps({"out_trade_no": "T1", "mchid": 7, "trade_state": ["SUCCESS"]}),
    ],
)
def test_signed_notifications_whose_resource_is_not_a_proper_object_are_refused(
    client, path, plain
):
    event = "TRANSACTION.SUCCESS" if path == "/pay/notify" else "REFUND.SUCCESS"
    body = json.dumps({"id": "evt-1", "event_type": event, "resource": encrypted(plain)})
    response = client.post(path, data=body, headers=signed(body))
    assert 400 <= response.status_code < 500, response.get_data(as_text=True)[:300]
    assert response.get_json()["code"] == "FAIL"


@pytest.mark.parametrize(
    "method, path, form",
    [
        ("GET", "/pay/orders/WX%00nul", None),
        ("GET", "/pay/orders/WX%00nul/status", None),
        ("POST", "/auth/bind", {"username": "al\x00ice", "password": "a long password"}),
    ],
    ids=["order page", "order status", "bind form"],
)
def test_a_nul_character_is_a_clear_answer_on_both_engines(
    logged_in, live, token, method, path, form
):
    # PostgreSQL text cannot hold NUL (SQLite can): a 4xx either way, never a 500.
    response = logged_in.request(
        method,
        live.url(path),
        data=dict(form or {}, csrf_token=token) if form else None,
        headers={"Accept": "application/json", "Referer": live.url("/auth/bind")},
    )
    assert response.status_code < 500, (response.status_code, response.text[:300])
    assert "Traceback" not in response.text
