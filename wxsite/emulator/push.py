"""Server push (消息推送) as WeChat sends it: signed, encrypted and delivered with retries.

Written from WeChat's documentation (消息加解密说明) and nothing of the site's: the
signatures, AES envelope and XML here are the emulator's own, so that a mistake in the
site's receiver cannot hide behind the same mistake in its stand-in. No Flask.
"""

import base64
import hashlib
import http.client
import re
import secrets
import socket
import threading
import time
import urllib.error
import urllib.request
from collections import deque
from dataclasses import dataclass, field
from urllib.parse import urlencode, urlsplit
from xml.etree import ElementTree

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

#: How the account's 服务器配置 sends pushes (明文模式 / 兼容模式 / 安全模式).
PLAINTEXT, COMPATIBLE, SAFE = "plaintext", "compatible", "safe"
MODES = (PLAINTEXT, COMPATIBLE, SAFE)
#: Ways a push can be spoiled on purpose, as an attacker (or a broken proxy) would.
TAMPERS = (
    "bad_signature",
    "bad_msg_signature",
    "flipped_ciphertext",
    "wrong_appid",
    "stale_timestamp",
    "oversized",
    "dtd",
    "xxe",
)
#: Tampers that only make sense when the push is encrypted.
AES_TAMPERS = ("bad_msg_signature", "flipped_ciphertext", "wrong_appid")
#: WeChat waits this long for an answer, then gives up on the attempt.
TIMEOUT = 5.0
#: WeChat's documentation: 微信服务器在五秒内收不到响应会断掉连接，并且重新发起请求，总共重试三次.
RETRIES = 3
#: Wall-clock pause between attempts; short so tests stay fast.
RETRY_DELAY = 0.1
#: Deliveries kept for /_emu/push/deliveries.
MAX_DELIVERIES = 1_000
#: Bytes of an answer kept in a delivery record (and read at most).
MAX_ANSWER = 64 * 1024
#: Default size of an ``oversized`` push body: twice what receivers usually accept.
OVERSIZED = 128 * 1024
#: Default age of a ``stale_timestamp`` push, seconds.
STALE_AGE = 3600

_TOKEN = re.compile(r"[A-Za-z0-9]{3,32}")
_AES_KEY = re.compile(r"[A-Za-z0-9]{43}")
_BLOCK = 32  # WeChat pads to 32-byte blocks, not AES's 16
# Characters XML 1.0 cannot carry, not even in CDATA.
_XML_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def signature(*parts):
    """Return sha1 of the sorted concatenation of *parts* (signature and msg_signature)."""
    return hashlib.sha1("".join(sorted(str(p) for p in parts)).encode("utf-8")).hexdigest()


def nonce():
    """Return a nonce like WeChat's: nine or ten digits."""
    return str(100_000_000 + secrets.randbelow(1_900_000_000))


def check_token(token):
    """Return an error message unless *token* is a valid 服务器配置 Token, else None."""
    if not isinstance(token, str) or not _TOKEN.fullmatch(token):
        return "token must be 3 to 32 letters or digits"
    return None


def check_aes_key(aes_key):
    """Return an error message unless *aes_key* is a valid EncodingAESKey, else None."""
    if not isinstance(aes_key, str) or not _AES_KEY.fullmatch(aes_key):
        return "aes_key must be 43 letters or digits (an EncodingAESKey)"
    return None


class Crypto:
    """WeChat's push AES: AES-256-CBC, key = b64decode(EncodingAESKey + "="), IV = key[:16]."""

    def __init__(self, aes_key):
        self.key = base64.b64decode(aes_key + "=")
        if len(self.key) != 32:
            raise ValueError("an EncodingAESKey decodes to 32 bytes")

    def __repr__(self):
        return "Crypto(<key hidden>)"

    def _cipher(self):
        return Cipher(algorithms.AES(self.key), modes.CBC(self.key[:16]))

    def encrypt(self, xml, appid, prefix=None):
        """Return base64 of AES(16 random bytes + 4-byte length + *xml* + *appid*, PKCS#7 to 32)."""
        text = xml.encode("utf-8") if isinstance(xml, str) else bytes(xml)
        # WeChat's samples use 16 printable random characters; any 16 bytes decrypt the same.
        prefix = secrets.token_urlsafe(12).encode() if prefix is None else bytes(prefix)
        plain = prefix + len(text).to_bytes(4, "big") + text + appid.encode("utf-8")
        pad = _BLOCK - len(plain) % _BLOCK
        plain += bytes([pad]) * pad
        encryptor = self._cipher().encryptor()
        return base64.b64encode(encryptor.update(plain) + encryptor.finalize()).decode("ascii")

    def decrypt(self, encrypt):
        """Return (xml bytes, appid str) inside *encrypt*; raise ValueError if it is malformed."""
        raw = base64.b64decode(encrypt, validate=True)
        if not raw or len(raw) % _BLOCK:
            raise ValueError("ciphertext is not whole 32-byte blocks")
        decryptor = self._cipher().decryptor()
        plain = decryptor.update(raw) + decryptor.finalize()
        pad = plain[-1]
        if not 1 <= pad <= _BLOCK or plain[-pad:] != bytes([pad]) * pad:
            raise ValueError("bad padding")
        content = plain[16:-pad]
        length = int.from_bytes(content[:4], "big")
        if len(content) < 4 or length > len(content) - 4:
            raise ValueError("bad length")
        return content[4 : 4 + length], content[4 + length :].decode("utf-8", "replace")


def cdata(text):
    """Return *text* as CDATA that no ``]]>`` inside it can break out of."""
    text = _XML_ILLEGAL.sub("", str(text))
    return "<![CDATA[" + text.replace("]]>", "]]]]><![CDATA[>") + "]]>"


def to_xml(fields):
    """Return WeChat's ``<xml>`` for (name, value) pairs: numbers bare, text in CDATA."""
    parts = []
    for name, value in fields:
        text = str(value) if isinstance(value, int) else cdata(value)
        parts.append(f"<{name}>{text}</{name}>")
    return "<xml>" + "".join(parts) + "</xml>"


def event_fields(
    to_user,
    from_user,
    create_time,
    msg_type="event",
    event=None,
    event_key=None,
    ticket=None,
    content=None,
    msg_id=None,
):
    """Return the fields of one push in WeChat's order (messages carry MsgId, events Event)."""
    fields = [
        ("ToUserName", to_user),
        ("FromUserName", from_user),
        ("CreateTime", int(create_time)),
        ("MsgType", msg_type),
    ]
    if msg_type == "event":
        fields.append(("Event", event))
        if event_key is not None:
            fields.append(("EventKey", event_key))
        if ticket is not None:
            fields.append(("Ticket", ticket))
    else:
        if content is not None:
            fields.append(("Content", content))
        fields.append(("MsgId", int(msg_id)))
    return fields


@dataclass
class Config:
    """One account's 服务器配置: where pushes go and how they are signed."""

    url: str
    token: str
    aes_key: str | None = None
    mode: str = PLAINTEXT
    timeout: float = TIMEOUT
    retries: int = RETRIES
    retry_delay: float = RETRY_DELAY

    def describe(self):
        """Return the configuration as the control API shows it."""
        return {
            "url": self.url,
            "token": self.token,
            "aes_key": self.aes_key,
            "mode": self.mode,
            "timeout": self.timeout,
            "retries": self.retries,
            "retry_delay": self.retry_delay,
        }


@dataclass
class Push:
    """A push ready to POST: its query string and body."""

    query: str
    body: bytes


def build(config, appid, fields, timestamp, tamper=None, size=OVERSIZED, other_appid=None):
    """Return the Push WeChat would POST for *fields* under *config* (spoiled by *tamper*)."""
    openid = dict(fields)["FromUserName"]
    xml = to_xml(fields)
    if tamper == "oversized":
        # A well-formed push padded past any sane limit (the padding field is made up).
        xml = xml[: -len("</xml>")] + f"<Padding>{cdata('x' * size)}</Padding></xml>"
    ts, nc = str(int(timestamp)), nonce()
    query = {"signature": signature(config.token, ts, nc), "timestamp": ts, "nonce": nc}
    query["openid"] = openid
    if config.mode == PLAINTEXT:
        body = _with_doctype(xml, tamper)
    else:
        crypto = Crypto(config.aes_key)
        inner_appid = (other_appid or "wx0000000000000bad") if tamper == "wrong_appid" else appid
        encrypt = crypto.encrypt(xml, inner_appid)
        if tamper == "flipped_ciphertext":
            encrypt = _flip(encrypt)
        # Re-signed after the flip: only someone holding the Token could do this, so the
        # receiver must notice the damage when decrypting, not by the signature.
        msg_signature = signature(config.token, ts, nc, encrypt)
        if tamper == "bad_msg_signature":
            msg_signature = _spoil(msg_signature)
        query.update(encrypt_type="aes", msg_signature=msg_signature)
        if config.mode == COMPATIBLE:
            outer = fields + [("Encrypt", encrypt)]
        else:
            outer = [("ToUserName", dict(fields)["ToUserName"]), ("Encrypt", encrypt)]
        body = _with_doctype(to_xml(outer), tamper)
    if tamper == "bad_signature":
        query["signature"] = _spoil(query["signature"])
    return Push(urlencode(query), body.encode("utf-8"))


def _spoil(hex_digest):
    # Change the last hex digit: a signature of the right shape that does not verify.
    last = hex_digest[-1]
    return hex_digest[:-1] + ("0" if last != "0" else "1")


def _flip(encrypt):
    # CBC: flipping the last byte of the next-to-last AES block flips the padding byte.
    raw = bytearray(base64.b64decode(encrypt))
    raw[-17] ^= 0x01
    return base64.b64encode(bytes(raw)).decode("ascii")


def _with_doctype(xml, tamper):
    # What an attacker can add: the envelope is outside the signature (and the ciphertext).
    if tamper == "dtd":
        entities = '<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">'
        doctype, use = f"<!DOCTYPE xml [{entities}]>", "&b;"
    elif tamper == "xxe":
        doctype, use = '<!DOCTYPE xml [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>', "&xxe;"
    else:
        return xml
    head = xml[: -len("</xml>")]
    return f'<?xml version="1.0"?>{doctype}{head}<Note>{use}</Note></xml>'


def verification_query(token, timestamp, echostr, tamper=None):
    """Return the query string of WeChat's URL check (GET with echostr)."""
    ts, nc = str(int(timestamp)), nonce()
    sig = signature(token, ts, nc)
    if tamper == "bad_signature":
        sig = _spoil(sig)
    return urlencode({"signature": sig, "echostr": echostr, "timestamp": ts, "nonce": nc})


def new_echostr():
    """Return an echostr like WeChat's (digits)."""
    return str(secrets.randbits(63))


# -- sending ------------------------------------------------------------------------------


@dataclass
class Attempt:
    """One HTTP exchange of a delivery."""

    status: int | None
    answer: str
    error: str | None = None

    def describe(self):
        """Return the attempt as the control API shows it."""
        return {"status": self.status, "answer": self.answer, "error": self.error}


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


# WeChat's servers use no proxy of ours and follow no redirect: a 3xx is a failed attempt.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirect)


def send(method, url, body=None, timeout=TIMEOUT):
    """Send one request like WeChat's push client; return the Attempt (never raises)."""
    headers = {"User-Agent": "Mozilla/4.0", "Accept": "*/*"}
    if body is not None:
        headers["Content-Type"] = "text/xml"
    request = urllib.request.Request(url, data=body, method=method, headers=headers)
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            return Attempt(response.status, _text(response.read(MAX_ANSWER)))
    except urllib.error.HTTPError as error:
        with error:
            return Attempt(error.code, _text(error.read(MAX_ANSWER)))
    except (TimeoutError, socket.timeout):
        return Attempt(None, "", "timeout")
    except urllib.error.URLError as error:
        reason = error.reason
        if isinstance(reason, (TimeoutError, socket.timeout)):
            return Attempt(None, "", "timeout")
        return Attempt(
            None, "", type(reason).__name__ if isinstance(reason, Exception) else "URLError"
        )
    except (OSError, http.client.HTTPException) as error:
        return Attempt(None, "", type(error).__name__)


def _text(data):
    return data.decode("utf-8", "replace")


def accepted(attempt):
    """Tell whether WeChat would take *attempt* as delivered: 2xx and success, empty or XML."""
    if attempt.status is None or not 200 <= attempt.status < 300:
        return False
    answer = attempt.answer.strip()
    return answer in ("success", "") or answer.startswith("<xml")


def read_reply(config, appid, answer):
    """Return (reply XML or None, error or None) for a passive reply under *config*."""
    text = answer.strip()
    if not text.startswith("<xml"):
        return None, None
    try:
        fields = _parse(text)
    except ValueError as error:
        return None, str(error)
    if "Encrypt" not in fields:
        if config.mode == SAFE:
            return text, "plaintext reply in safe mode"
        return text, None
    if config.mode == PLAINTEXT:
        return None, "encrypted reply in plaintext mode"
    expected = signature(
        config.token, fields.get("TimeStamp", ""), fields.get("Nonce", ""), fields["Encrypt"]
    )
    if fields.get("MsgSignature", "") != expected:
        return None, "bad MsgSignature"
    try:
        xml, inner_appid = Crypto(config.aes_key).decrypt(fields["Encrypt"])
    except ValueError as error:
        return None, f"undecryptable reply: {error}"
    if inner_appid != appid:
        return None, "another AppID in the reply"
    return xml.decode("utf-8", "replace"), None


def _parse(text):
    # The site's answer is not trusted either: no DTDs (so no entities) get parsed.
    if "<!DOCTYPE" in text.upper() or "<!ENTITY" in text.upper():
        raise ValueError("DTD in the reply")
    try:
        root = ElementTree.fromstring(text)
    except ElementTree.ParseError:
        raise ValueError("malformed XML reply") from None
    return {child.tag: child.text or "" for child in root}


@dataclass
class Delivery:
    """A push and every attempt WeChat made to deliver it."""

    id: int
    appid: str
    url: str
    mode: str
    kind: str
    xml: str
    push: Push
    user: str | None = None
    openid: str | None = None
    msg_type: str | None = None
    event: str | None = None
    tamper: str | None = None
    replay_of: int | None = None
    tries: list = field(default_factory=list)
    state: str = "sending"
    accepted: bool = False
    reply: str | None = None
    reply_error: str | None = None

    def describe(self):
        """Return the delivery as the control API shows it."""
        last = self.tries[-1] if self.tries else None
        return {
            "id": self.id,
            "appid": self.appid,
            "url": self.url,
            "query": self.push.query,
            "mode": self.mode,
            "kind": self.kind,
            "user": self.user,
            "openid": self.openid,
            "msg_type": self.msg_type,
            "event": self.event,
            "tamper": self.tamper,
            "replay_of": self.replay_of,
            "xml": self.xml,
            "body": self.push.body.decode("utf-8", "replace"),
            "state": self.state,
            "attempts": len(self.tries),
            "tries": [t.describe() for t in self.tries],
            "status": last.status if last else None,
            "answer": last.answer if last else None,
            "error": last.error if last else None,
            "accepted": self.accepted,
            "reply": self.reply,
            "reply_error": self.reply_error,
        }


class PushState:
    """Every account's push configuration and the deliveries made, under one lock."""

    def __init__(self, configs=None):
        self.lock = threading.RLock()
        self.initial = dict(configs or {})
        self.reset()

    def reset(self):
        """Go back to the configuration the emulator was created with; forget deliveries."""
        with self.lock:
            self.configs = dict(self.initial)
            self.deliveries = deque(maxlen=MAX_DELIVERIES)
            self._seq = 0

    def config(self, appid):
        """Return *appid*'s Config, or None when its push is off."""
        with self.lock:
            return self.configs.get(appid)

    def set_config(self, appid, config):
        """Set (or with None, switch off) *appid*'s push configuration."""
        with self.lock:
            if config is None:
                self.configs.pop(appid, None)
            else:
                self.configs[appid] = config

    def new_delivery(self, **fields):
        """Record a new Delivery and return it."""
        with self.lock:
            self._seq += 1
            delivery = Delivery(self._seq, **fields)
            self.deliveries.append(delivery)
            return delivery

    def find(self, delivery_id=None):
        """Return delivery *delivery_id* (default: the last one), or None."""
        with self.lock:
            if delivery_id is None:
                return self.deliveries[-1] if self.deliveries else None
            return next((d for d in self.deliveries if d.id == delivery_id), None)

    def deliver(self, delivery, config, resign=None, retries=None):
        """POST *delivery* like WeChat, retrying a timeout, a non-2xx or an unexpected answer.

        *resign* (a callable returning a new Push) makes every retry freshly signed and
        encrypted, as a new request would be: only the event's own fields (MsgId, or
        FromUserName + CreateTime) tell a retry from a new event.
        """
        retries = config.retries if retries is None else retries
        push = delivery.push
        for number in range(retries + 1):
            if number:
                time.sleep(config.retry_delay)
                if resign is not None:
                    push = resign()
            attempt = send("POST", f"{delivery.url}?{push.query}", push.body, config.timeout)
            ok = accepted(attempt)
            reply = read_reply(config, delivery.appid, attempt.answer) if ok else (None, None)
            with self.lock:
                delivery.push = push
                delivery.tries.append(attempt)
                if ok:
                    delivery.accepted = True
                    delivery.reply, delivery.reply_error = reply
            if ok:
                break
        with self.lock:
            delivery.state = "done"
        return delivery

    def describe_deliveries(self):
        """Return every delivery, oldest first."""
        with self.lock:
            return [d.describe() for d in self.deliveries]

    def clear_deliveries(self):
        """Forget the deliveries."""
        with self.lock:
            self.deliveries.clear()


def url_error(url):
    """Return an error message unless *url* is an absolute http(s) URL, else None."""
    if not isinstance(url, str):
        return "url must be an absolute http(s) URL"
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query:
        return "url must be an absolute http(s) URL without a query"
    return None
