"""Random bodies, headers and path values on every route and method (RELIABILITY 56).

Hypothesis walks ``app.url_map``: every rule with every method it takes (and one it does
not), logged out and logged in through the emulator, with a fixed budget and derandomized
so that CI sees the same requests each run. The answer is never a 5xx other than an
explicit 503, never a traceback, and a 4xx is the site's own error (not Werkzeug's page).
"""

import base64
import json
import logging
import os
import re
import time
from urllib.parse import quote, urlencode

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from werkzeug.routing import IntegerConverter, PathConverter

from support import DESKTOP_UA, WECHAT_UA, csrf_token, site_config, wechat_login
from wxsite import create_app
from wxsite.config import EMULATOR_PAY_KEYS
from wxsite.wechat import protocol

#: Examples per (rule, method): where bodies matter most, fewer where Flask answers alone
#: (OPTIONS, a method the rule does not take). WXSITE_FUZZ_SCALE=20 for a long local run.
SCALE = float(os.environ.get("WXSITE_FUZZ_SCALE", "1"))
EXAMPLES = {"POST": 40, "GET": 12, "HEAD": 4, "OPTIONS": 2, "PATCH": 2}
#: Stand-ins replaced when the request is made (the live session can change between examples).
COOKIE, TOKEN = "<session-cookie>", "<csrf-token>"

# -- strategies -----------------------------------------------------------------------------

#: What a WSGI server hands the app: header bytes read as latin-1 (so "²" and mojibake).
latin1 = st.text(
    alphabet=st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"),
    max_size=40,
)
#: UTF-8 read as latin-1, without the control characters no server lets through in a header.
mojibake = st.text(max_size=20).map(
    lambda s: re.sub(r"[\x00-\x1f\x7f]", "", s.encode().decode("latin-1"))
)
header_text = st.one_of(latin1, mojibake)
#: Numbers as text, edges first: past SQLite's INTEGER, past int()'s 4300 digits, other
#: scripts' digits (str.isdigit() takes "²", int() refuses it; int() reads "١٢٣").
EDGE_NUMBERS = ["²", "١٢٣", str(2**63), str(2**64), "9" * 40, "9" * 5000, str(2**63 - 1), "-1"]
numbers = st.one_of(
    st.sampled_from(EDGE_NUMBERS),
    st.integers(min_value=-(2**70), max_value=2**80).map(str),
    st.text(alphabet="0123456789²³¹٠١٢٣٤٥０１", min_size=1, max_size=25),
)
raw_segment = st.one_of(
    st.text(min_size=1, max_size=30).map(lambda s: quote(s, safe="")),
    st.binary(min_size=1, max_size=12).map(lambda b: "".join(f"%{c:02X}" for c in b)),
    st.sampled_from(["..", "%2e%2e", "%00", "%2F", "a%0d%0aSet-Cookie:x=1", "%ff%fe"]),
)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats()
    | st.text(max_size=12),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=10,
)


def _nested(n, obj):
    return ('{"a":' * n + "1" + "}" * n) if obj else ("[" * n + "]" * n)


def _encrypted(value, nonce="fuzzfuzzfuzz"):
    plain = value if isinstance(value, str) else json.dumps(value)
    data = AESGCM(protocol.EMULATOR_APIV3_KEY.encode()).encrypt(
        nonce.encode(), plain.encode(), b"transaction"
    )
    return {
        "algorithm": "AEAD_AES_256_GCM",
        "ciphertext": base64.b64encode(data).decode(),
        "associated_data": "transaction",
        "nonce": nonce,
    }


#: Decrypted resources: WeChat Pay's fields with values of any JSON type, or no object at all.
resources = st.one_of(
    json_values,
    st.fixed_dictionaries(
        {},
        optional={
            k: json_values | st.text(max_size=12)
            for k in ["mchid", "appid", "out_trade_no", "trade_state", "amount", "payer"]
            + ["out_refund_no", "refund_status", "transaction_id", "success_time"]
        },
    ),
    st.builds(_nested, st.integers(min_value=900, max_value=5000), st.booleans()),
)
notifications = st.fixed_dictionaries(
    {
        "id": st.text(max_size=8) | json_values,
        "event_type": st.sampled_from(["TRANSACTION.SUCCESS", "REFUND.SUCCESS"]) | json_values,
        "resource": st.one_of(
            resources.map(_encrypted),
            json_values,
            st.fixed_dictionaries(
                {"nonce": json_values, "ciphertext": json_values, "associated_data": json_values}
            ),
        ),
    }
).map(json.dumps)
json_bodies = st.one_of(
    json_values.map(json.dumps),
    st.builds(_nested, st.integers(min_value=900, max_value=30_000), st.booleans()),
    st.fixed_dictionaries({"server_ids": st.lists(json_values, max_size=10)}).map(json.dumps),
    st.fixed_dictionaries({"server_id": json_values}).map(json.dumps),
    st.fixed_dictionaries({"username": json_values, "password": json_values}).map(json.dumps),
    notifications,
)
form_bodies = st.dictionaries(
    st.sampled_from(
        ["csrf_token", "username", "password", "next", "product", "amount", "out_trade_no"]
        + ["request_id", "server_ids"]
    )
    | st.text(max_size=8),
    st.sampled_from([TOKEN, "coffee", "1", "-1", str(2**70), "/", "//evil.com"])
    | st.text(max_size=20),
    max_size=5,
).map(lambda d: urlencode(d).encode())
CONTENT_TYPES = [
    "multipart/form-data; boundary=xyz",
    "multipart/form-data",
    "text/plain",
    "application/json; charset=gbk",
    "text/xml",
    "",
]
#: (Content-Type, body): mostly a body of the type it claims to be, sometimes not.
payloads = st.one_of(
    st.tuples(st.just("application/json"), json_bodies.map(str.encode)),
    st.tuples(st.just("application/x-www-form-urlencoded"), form_bodies),
    st.tuples(
        st.sampled_from(CONTENT_TYPES) | header_text,
        st.binary(max_size=300) | json_bodies.map(str.encode) | form_bodies,
    ),
    st.just((None, None)),
)
HEADERS = {
    "Accept": st.sampled_from(["application/json", "text/html", "*/*", "text/html;q=x, */*;q=1e9"])
    | header_text,
    "User-Agent": st.sampled_from([WECHAT_UA, DESKTOP_UA, "MicroMessenger"]) | header_text,
    "Cookie": st.sampled_from([COOKIE, f"{COOKIE}; wxsite_session=x", "wxsite_session=..."])
    | st.builds(lambda junk: f"{COOKIE}; {junk}", header_text)
    | header_text,
    "X-CSRFToken": st.sampled_from([TOKEN]) | header_text,
    "Host": st.sampled_from(["localhost", "evil.com", "localhost:99999", "[::1]", "a b", ""])
    | header_text,
    "X-Forwarded-For": header_text,
    "X-Forwarded-Proto": st.sampled_from(["https", "http", "ftp"]) | header_text,
    "X-Forwarded-Host": st.sampled_from(["evil.com"]) | header_text,
    "X-Forwarded-Port": numbers | header_text,
    "X-Forwarded-Prefix": header_text,
    "Referer": header_text,
    "Origin": header_text,
    "Range": st.sampled_from(["bytes=0-1", "bytes=-5", f"bytes={2**70}-", "bytes=5-1"])
    | header_text,
    "If-Modified-Since": st.sampled_from(["Thu, 01 Jan 1970 00:00:00 GMT"]) | header_text,
    "If-None-Match": header_text,
    "Accept-Language": header_text,
    "Authorization": header_text,
    "Content-Encoding": st.sampled_from(["gzip", "deflate"]) | header_text,
}
#: WeChat Pay's notification headers, as a set: the right key id, a fresh timestamp and a
#: real signature (SIGNED: made over the body when sent) beside odd values of each.
NOW, SIGNED = "<now>", "<signed>"
KEY_ID = protocol.EMULATOR_PLATFORM_KEY_ID
wechatpay_headers = st.fixed_dictionaries(
    {
        "Wechatpay-Serial": st.sampled_from([KEY_ID]) | header_text,
        "Wechatpay-Timestamp": st.sampled_from([NOW]) | numbers | header_text,
        "Wechatpay-Nonce": st.sampled_from(["n0nce"]) | header_text,
        "Wechatpay-Signature": st.sampled_from([SIGNED]) | header_text,
    }
)
#: A notification as WeChat Pay signs it (only the timestamp sometimes odd): a body that
#: passes the signature check, so what lies behind it gets random input too.
signed_headers = st.fixed_dictionaries(
    {
        "Wechatpay-Serial": st.just(KEY_ID),
        "Wechatpay-Timestamp": st.sampled_from([NOW, NOW]) | numbers,
        "Wechatpay-Nonce": st.just("n0nce"),
        "Wechatpay-Signature": st.just(SIGNED),
    }
)
plain_headers = st.fixed_dictionaries({}, optional=HEADERS)
any_request = st.tuples(plain_headers, st.none() | wechatpay_headers, payloads)
signed_notification = st.tuples(
    plain_headers,
    signed_headers,
    st.tuples(st.just("application/json"), notifications.map(str.encode)),
)


def requests_for(method):
    """(headers, WeChat Pay headers, (Content-Type, body)) for one request by ``method``."""
    return st.one_of(any_request, signed_notification) if method == "POST" else any_request


query_keys = st.sampled_from(
    ["next", "scope", "code", "state", "url", "apis", "ref", "v", "tab", "amount", "echostr"]
) | st.text(max_size=6)
query_values = st.one_of(
    st.text(max_size=30),
    numbers,
    st.sampled_from(["snsapi_userinfo", "/me", "//evil.com", "http://localhost/share", "hq"]),
)
queries = st.dictionaries(query_keys, query_values, max_size=4)


def _platform_key():
    with open(os.path.join(EMULATOR_PAY_KEYS, "platform.key.pem"), "rb") as f:
        return serialization.load_pem_private_key(f.read(), None)


PLATFORM_KEY = _platform_key()


def finish_wechatpay(sent, body):
    """Replace NOW and SIGNED with a current timestamp and the signature WeChat Pay makes."""
    if sent.get("Wechatpay-Timestamp") == NOW:
        sent["Wechatpay-Timestamp"] = str(int(time.time()))
    if sent.get("Wechatpay-Signature") == SIGNED:
        text = (body or b"").decode("utf-8", "replace")
        message = f"{sent['Wechatpay-Timestamp']}\n{sent['Wechatpay-Nonce']}\n{text}\n"
        raw = PLATFORM_KEY.sign(message.encode(), padding.PKCS1v15(), hashes.SHA256())
        sent["Wechatpay-Signature"] = base64.b64encode(raw).decode()


def path_value(converter):
    """Values for one ``<…>`` of a rule: ids get numbers of every shape, the rest anything."""
    if isinstance(converter, IntegerConverter):
        return numbers.map(lambda s: quote(s, safe="")) | raw_segment
    if isinstance(converter, PathConverter):
        return st.lists(raw_segment, min_size=1, max_size=3).map("/".join)
    return raw_segment


def paths(rule):
    """Concrete paths for ``rule``, each ``<…>`` drawn from its converter's values."""
    parts = re.split(r"<(?:[^:>]+:)?([^>]+)>", rule.rule)
    strategies = [
        st.just(part) if i % 2 == 0 else path_value(rule._converters[part])
        for i, part in enumerate(parts)
    ]
    return st.tuples(*strategies).map("".join)


# -- the walk ---------------------------------------------------------------------------------

WERKZEUG_PAGE = re.compile(rb"<title>\d{3} [^<]*</title>")


class Unhandled(logging.Handler):
    """Collect log records that carry a traceback (the 500 handler logs one)."""

    def __init__(self):
        super().__init__()
        self.records = []

    def emit(self, record):
        if record.exc_info or "unhandled" in record.getMessage():
            self.records.append(record)


def walk(app, state, defaults=(), relogin=None):
    """Throw random requests at every rule and method of ``app``; fail on any 5xx but 503."""
    # state: the session cookie and CSRF token the stand-ins become; defaults: headers
    # sent unless the example draws its own.
    client = app.test_client(use_cookies=False)
    unhandled = Unhandled()
    logging.getLogger("wxsite").addHandler(unhandled)
    pairs = []
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: (r.rule, r.endpoint)):
        for method in sorted(rule.methods) + ["PATCH"]:
            pairs.append((rule, method))
    try:
        for rule, method in pairs:

            @settings(
                max_examples=max(1, int(EXAMPLES[method] * SCALE)),
                derandomize=True,
                database=None,
                deadline=None,
                suppress_health_check=list(HealthCheck),
            )
            @given(path=paths(rule), query=queries, parts=requests_for(method))
            def one_request(path, query, parts):
                plain, wechatpay, (content_type, body) = parts
                unhandled.records.clear()
                sent = {**dict(defaults), **plain}
                sent = {k: v.replace(COOKIE, state["cookie"]) for k, v in sent.items()}
                sent = {k: v.replace(TOKEN, state["token"]) for k, v in sent.items()}
                if content_type is not None:
                    sent["Content-Type"] = content_type
                if body is not None:
                    body = body.replace(TOKEN.encode(), state["token"].encode())
                if wechatpay:
                    sent.update(wechatpay)
                    finish_wechatpay(sent, body)
                response = client.open(
                    path,
                    method=method,
                    query_string=urlencode(query),
                    headers=sent,
                    data=body,
                )
                status, data = response.status_code, response.get_data()
                what = f"{method} {path}?{urlencode(query)} headers={sent!r} body={body!r:.300}"
                assert status < 500 or status == 503, f"{status} for {what}"
                assert b"Traceback" not in data, what
                assert not WERKZEUG_PAGE.search(data), f"Werkzeug's own {status} page for {what}"
                assert not unhandled.records, f"traceback logged for {what}"
                if relogin and rule.endpoint == "auth.logout" and status == 302:
                    relogin()  # a successful logout ends the session the next examples use

            one_request()
    finally:
        logging.getLogger("wxsite").removeHandler(unhandled)


def session_of(client):
    """Return the state of a fresh visitor of ``client``'s app: session cookie, CSRF token."""
    page = client.get("/")
    cookie = "wxsite_session=" + client.get_cookie("wxsite_session").value
    return {"cookie": cookie, "token": csrf_token(page.get_data(as_text=True))}


@pytest.mark.slow
def test_no_5xx_logged_out(tmp_path, emu):
    # The Host check on (a public URL is set): foreign hosts are among the inputs.
    app = create_app(site_config(tmp_path, emu, WXSITE_PUBLIC_URL="http://localhost"))
    walk(app, session_of(app.test_client()))


@pytest.mark.slow
def test_no_5xx_logged_in(app, live, phone, emu):
    state = {}

    def login():
        phone.cookies.clear()
        response = wechat_login(phone, live)
        assert response.status_code == 200, response.text[:300]
        state["cookie"] = "wxsite_session=" + phone.cookies.get("wxsite_session")
        state["token"] = csrf_token(response.text)

    login()
    walk(app, state, defaults={"Cookie": COOKIE, "X-CSRFToken": TOKEN}, relogin=login)
