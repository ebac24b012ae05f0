"""WeChat Pay API v3: signed requests, verified responses and notifications. No Flask.

A thin client on ``cryptography`` rather than ``wechatpayv3``: that library fixes the
API host and fetches platform certificates itself, so it cannot be pointed at the
emulator or given a private CA bundle; what it does beyond this file is not needed here.
"""

import base64
import json
import logging
import secrets
import time

import requests
from cryptography import x509
from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from . import protocol
from .errors import WeChatError
from .http import Transport, within

log = logging.getLogger("wxsite.wechat")


class PayError(WeChatError):
    """WeChat Pay refused or could not be reached; ``code`` is its error code (e.g. NOT_ENOUGH)."""

    def __init__(self, code, message, status=None, path=None):
        super().__init__(None if code is None else code, message, path)
        self.code = code
        self.status = status

    @property
    def unavailable(self):
        return self.code is None


class BadNotification(ValueError):
    """A notification whose signature, age or content does not check out."""


def load_private_key(pem):
    """Parse a PEM private key (bytes)."""
    return serialization.load_pem_private_key(pem, password=None)


def load_public_key(pem):
    """Parse a PEM public key (bytes), or the public key of a PEM certificate."""
    if b"CERTIFICATE" in pem:
        return x509.load_pem_x509_certificate(pem).public_key()
    return serialization.load_pem_public_key(pem)


def load_certificate(pem):
    """Parse a PEM platform certificate (bytes); return (serial, public key, valid from)."""
    cert = x509.load_pem_x509_certificate(pem)
    # Upper-case hex, as the merchant platform shows it and Wechatpay-Serial carries it.
    return format(cert.serial_number, "X"), cert.public_key(), cert.not_valid_before_utc


def sign(private_key, message):
    """Return base64(RSA-SHA256(message)), WeChat Pay's signature."""
    raw = private_key.sign(message.encode(), padding.PKCS1v15(), hashes.SHA256())
    return base64.b64encode(raw).decode()


def verify(public_key, message, signature):
    """Return True if ``signature`` is a valid RSA-SHA256 signature of ``message``."""
    try:
        public_key.verify(
            base64.b64decode(signature), message.encode(), padding.PKCS1v15(), hashes.SHA256()
        )
    except (InvalidSignature, ValueError):
        return False
    return True


#: A timestamp header has at most this many digits (seconds until the year 33658).
TIMESTAMP_DIGITS = 12
#: Refund query and order close (paths relative to the API base).
PAY_REFUND_QUERY = protocol.PAY_REFUNDS + "/{out_refund_no}"
PAY_CLOSE = protocol.PAY_QUERY + "/close"
#: At most this much of an unknown Wechatpay-Serial goes into a log line or an error.
SERIAL_SHOWN = 64
#: Fields of a decrypted resource that the site reads, and the JSON type each must have.
RESOURCE_FIELDS = {
    "mchid": str,
    "appid": str,
    "out_trade_no": str,
    "transaction_id": str,
    "trade_state": str,
    "success_time": str,
    "out_refund_no": str,
    "refund_id": str,
    "refund_status": str,
    "status": str,
    "funds_account": str,
    "amount": dict,
    "payer": dict,
}


def decrypt(apiv3_key, resource):
    """Decrypt a notification's AES-256-GCM ``resource``; return the JSON object it holds."""
    if not isinstance(resource, dict):
        raise BadNotification("resource is not an object")
    fields = [resource.get(k) for k in ("nonce", "ciphertext")]
    associated = resource.get("associated_data") or ""
    if not all(isinstance(v, str) for v in (*fields, associated)):
        raise BadNotification("resource fields are not strings")
    try:
        plain = AESGCM(apiv3_key.encode()).decrypt(
            fields[0].encode(), base64.b64decode(fields[1]), associated.encode()
        )
        data = json.loads(plain)
    except (InvalidTag, ValueError, RecursionError) as exc:
        raise BadNotification(f"cannot decrypt resource ({type(exc).__name__})") from None
    check_resource(data)
    return data


def check_resource(data):
    """Raise BadNotification unless ``data`` is an object whose known fields have their types."""
    if not isinstance(data, dict):
        raise BadNotification("decrypted resource is not an object")
    for name, kind in RESOURCE_FIELDS.items():
        if data.get(name) is not None and not isinstance(data[name], kind):
            raise BadNotification(f"resource field {name} is not a {kind.__name__}")


class PayClient:
    """One merchant's Pay API v3 client; TLS is always verified (``ca_bundle`` or system CAs)."""

    def __init__(
        self,
        mchid,
        appid,
        private_key,
        serial,
        apiv3_key,
        platform_keys,
        request_serial=None,
        api_base=protocol.PAY_API_BASE,
        ca_bundle=None,
        timeout=(3.05, 10),
        deadline=15.0,
        clock=time.time,
    ):
        self.mchid = mchid
        self.appid = appid
        self._key = private_key
        self.serial = serial
        self._apiv3_key = apiv3_key
        # {serial: public key}: the WeChat Pay public key (PUB_KEY_ID_…) and/or platform
        # certificates; during a merchant's switch WeChat signs with either at random.
        self._platform_keys = dict(platform_keys)
        if not self._platform_keys:
            raise ValueError("WeChat Pay needs at least one key to verify answers with")
        self.request_serial = request_serial or next(iter(self._platform_keys))
        self.api_base = api_base.rstrip("/")
        self.verify_tls = ca_bundle or True
        self.timeout = timeout
        # The whole call's budget, held in mid-read too: a dripping answer cannot keep a
        # thread past it (per-read timeouts alone let 1 byte a second go on for ever).
        self.deadline = deadline
        self.clock = clock
        self.http = Transport.mount(requests.Session())

    def __repr__(self):
        return f"<PayClient {self.mchid}>"

    # -- orders ---------------------------------------------------------------------------

    def jsapi_order(self, description, out_trade_no, total, openid, notify_url):
        """Create a JSAPI order; return its prepay_id."""
        body = {
            "appid": self.appid,
            "mchid": self.mchid,
            "description": description,
            "out_trade_no": out_trade_no,
            "notify_url": notify_url,
            "amount": {"total": total, "currency": "CNY"},
            "payer": {"openid": openid},
        }
        return self._request("POST", protocol.PAY_JSAPI, body)["prepay_id"]

    def page_params(self, prepay_id):
        """Return what the page hands to ``wx.chooseWXPay`` (signed with the merchant key)."""
        timestamp, nonce = str(int(self.clock())), secrets.token_hex(16)
        package = f"prepay_id={prepay_id}"
        message = f"{self.appid}\n{timestamp}\n{nonce}\n{package}\n"
        return {
            "appId": self.appid,
            "timeStamp": timestamp,
            "nonceStr": nonce,
            "package": package,
            "signType": "RSA",
            "paySign": sign(self._key, message),
        }

    def query(self, out_trade_no):
        """Return WeChat's view of an order (covers lost notifications)."""
        path = protocol.PAY_QUERY.format(out_trade_no=out_trade_no) + f"?mchid={self.mchid}"
        data = self._request("GET", path)
        try:
            check_resource(data)
        except BadNotification as exc:
            raise PayError(None, f"WeChat Pay answered an odd order ({exc})", path=path) from None
        return data

    def refund(
        self, out_trade_no, out_refund_no, refund, total, notify_url=None, funds_account=None
    ):
        """Ask for a refund; ``out_refund_no`` makes a repeated request the same refund."""
        body = {
            "out_trade_no": out_trade_no,
            "out_refund_no": out_refund_no,
            "amount": {"refund": refund, "total": total, "currency": "CNY"},
        }
        if notify_url:
            body["notify_url"] = notify_url
        if funds_account:
            body["funds_account"] = funds_account
        return self._request("POST", protocol.PAY_REFUNDS, body)

    def query_refund(self, out_refund_no):
        """Return WeChat's view of a refund (covers lost refund notifications)."""
        path = PAY_REFUND_QUERY.format(out_refund_no=out_refund_no)
        data = self._request("GET", path)
        try:
            check_resource(data)
        except BadNotification as exc:
            raise PayError(None, f"WeChat Pay answered an odd refund ({exc})", path=path) from None
        return data

    def close(self, out_trade_no):
        """Close an unpaid order at WeChat, so that it can no longer be paid."""
        path = PAY_CLOSE.format(out_trade_no=out_trade_no)
        self._request("POST", path, {"mchid": self.mchid})

    @property
    def serials(self):
        """The serials of the keys answers and notifications may be signed with."""
        return tuple(self._platform_keys)

    # -- notifications --------------------------------------------------------------------

    def parse_notification(self, headers, body):
        """Verify a notification (signature, key id, age) and return it with its resource decrypted."""
        self._check_signed(headers, body, BadNotification)
        try:
            data = json.loads(body)
        except (ValueError, RecursionError):
            raise BadNotification("not JSON") from None
        if not isinstance(data, dict) or not isinstance(data.get("resource"), dict):
            raise BadNotification("not a notification")
        if not all(isinstance(data.get(k), str) for k in ("id", "event_type")):
            raise BadNotification("id or event_type is not a string")
        data["resource"] = decrypt(self._apiv3_key, data["resource"])
        return data

    # -- HTTP -----------------------------------------------------------------------------

    def _request(self, method, path, body=None):
        text = "" if body is None else json.dumps(body, ensure_ascii=False, separators=(",", ":"))
        headers = {
            "Authorization": self._authorization(method, path, text),
            "Accept": "application/json",
            "Content-Type": "application/json",
            "User-Agent": "wxsite",
            "Wechatpay-Serial": self.request_serial,
        }
        t0 = time.monotonic()
        try:
            with within(self.deadline):
                response = self.http.request(
                    method,
                    self.api_base + path,
                    data=text.encode() if text else None,
                    headers=headers,
                    timeout=self.timeout,
                    verify=self.verify_tls,
                )
        except requests.exceptions.SSLError:
            log.error("wechat pay %s: TLS certificate not trusted", path.split("?")[0])
            raise PayError(None, "WeChat Pay's TLS certificate is not trusted", path=path) from None
        except requests.RequestException as exc:
            raise PayError(
                None, f"WeChat Pay unreachable ({type(exc).__name__})", path=path
            ) from None
        log.info(
            "wechat pay %s %s %.0fms",
            path.split("?")[0],
            response.status_code,
            (time.monotonic() - t0) * 1000,
        )
        if response.status_code >= 500:
            raise PayError(
                None, f"WeChat Pay answered HTTP {response.status_code}", response.status_code, path
            )
        self._check_signed(response.headers, response.content, PayError)
        try:
            data = response.json() if response.content else {}
        except ValueError:
            raise PayError(
                None, "WeChat Pay answered something that is not JSON", path=path
            ) from None
        if not isinstance(data, dict):
            raise PayError(None, "WeChat Pay answered JSON that is not an object", path=path)
        if response.status_code >= 400:
            raise PayError(
                data.get("code", "ERROR"), data.get("message", ""), response.status_code, path
            )
        return data

    def _authorization(self, method, path, body):
        timestamp, nonce = str(int(self.clock())), secrets.token_hex(16)
        signature = sign(self._key, f"{method}\n{path}\n{timestamp}\n{nonce}\n{body}\n")
        return (
            f'{protocol.PAY_AUTH_SCHEMA} mchid="{self.mchid}",nonce_str="{nonce}",'
            f'signature="{signature}",timestamp="{timestamp}",serial_no="{self.serial}"'
        )

    def _check_signed(self, headers, body, error):
        timestamp = headers.get("Wechatpay-Timestamp", "")
        nonce = headers.get("Wechatpay-Nonce", "")
        signature = headers.get("Wechatpay-Signature", "")
        serial = headers.get("Wechatpay-Serial", "")
        key = self._platform_keys.get(serial)
        if key is None:
            shown = ascii(serial[:SERIAL_SHOWN]) if serial else "(none)"
            raise _error(error, f"signed with an unknown key: Wechatpay-Serial {shown}")
        # ASCII digits only: str.isdigit() also takes "²" and "١٢٣", which int() refuses or
        # reads; and a bounded length, so the number converts and compares with a float.
        if not (
            0 < len(timestamp) <= TIMESTAMP_DIGITS
            and timestamp.isascii()
            and timestamp.isdigit()
            and abs(self.clock() - int(timestamp)) <= protocol.PAY_MAX_SKEW
        ):
            raise _error(error, "stale or missing timestamp")
        text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
        if not verify(key, f"{timestamp}\n{nonce}\n{text}\n", signature):
            raise _error(error, "bad signature")


def _error(kind, message):
    return PayError("SIGN_ERROR", message) if kind is PayError else kind(message)
