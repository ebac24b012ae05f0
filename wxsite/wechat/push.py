"""WeChat's server push (消息推送, SPEC §4): verify, decrypt, parse and reply. No Flask.

The blueprint behind ``GET,POST /wechat/push`` calls ``PushReceiver``: ``verify_url`` for
the GET that proves the URL, ``receive`` for each POSTed event, ``reply_text`` for a
passive reply. Every refusal is a ``BadPush`` whose ``reason`` is short, fixed text: never
the payload, the token or the key, so it can go straight into one log line.

Plaintext mode is authenticated only by ``signature`` over (token, timestamp, nonce): the
body itself is not covered. Compatible and safe mode (``encrypt_type=aes``) also sign the
ciphertext (``msg_signature``) and carry the AppID inside it, which is what this module
trusts when an EncodingAESKey is configured.
"""

import base64
import hashlib
import hmac
import re
import secrets
import time
from dataclasses import dataclass, field
from types import MappingProxyType
from xml.etree.ElementTree import ParseError

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring

#: Largest push body read or parsed; WeChat's events are well under 2 KB.
MAX_BODY = 64 * 1024
#: How far a push's ``timestamp`` may be from the clock, seconds (WeChat retries within 15 s).
MAX_SKEW = 300
#: The answer WeChat expects when no passive reply is sent.
SUCCESS = "success"

SUBSCRIBE = "subscribe"
UNSUBSCRIBE = "unsubscribe"
SCAN = "SCAN"
CLICK = "CLICK"
VIEW = "VIEW"
#: EventKey prefix of a subscribe that came through a parametric QR code.
QRSCENE_PREFIX = "qrscene_"

_TOKEN = re.compile(r"[A-Za-z0-9]{3,32}")
_AES_KEY = re.compile(r"[A-Za-z0-9]{43}")
_DIGITS = re.compile(r"[0-9]{1,12}")
_SHA1_HEX = re.compile(r"[0-9A-Fa-f]{40}")
# WeChat's nonces are digits; a bound keeps hostile query strings out of the hash.
_NONCE = re.compile(r"[A-Za-z0-9_-]{1,64}")
# What an echostr may be before it is reflected into a response body.
_ECHOSTR = re.compile(r"[A-Za-z0-9+/=_.-]{1,512}")
# Characters XML 1.0 cannot carry at all, not even in CDATA (and lone surrogates, not UTF-8).
_XML_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_BLOCK = 32  # WeChat pads to 32 bytes, not AES's 16
_MAX_DEPTH = 4  # <xml><SendPicsInfo><PicList><item><PicMd5Sum> is the deepest WeChat sends


class BadPush(ValueError):
    """A push (or URL check) refused; ``reason`` is fixed text safe to log, ``status`` a 4xx."""

    def __init__(self, reason, status=400):
        super().__init__(reason)
        self.reason = reason
        self.status = status


# -- configuration ------------------------------------------------------------------------


def validate_token(value, name="WX_PUSH_TOKEN"):
    """Return ``value`` if it is a valid 服务器配置 Token, else raise ValueError naming ``name``."""
    if not isinstance(value, str) or not _TOKEN.fullmatch(value):
        raise _shape_error(name, "3 to 32 letters or digits (A-Z, a-z, 0-9)", value)
    return value


def validate_aes_key(value, name="WX_PUSH_AES_KEY"):
    """Return ``value`` if it is a valid EncodingAESKey, else raise ValueError naming ``name``."""
    if not isinstance(value, str) or not _AES_KEY.fullmatch(value):
        raise _shape_error(name, "exactly 43 letters or digits (A-Z, a-z, 0-9)", value)
    return value


def _shape_error(name, shape, value):
    # The length and the kind of mistake help the operator; the value is a secret.
    length = len(value) if isinstance(value, str) else 0
    odd = isinstance(value, str) and not all(c.isascii() and c.isalnum() for c in value)
    return ValueError(
        f"{name} must be {shape}, as shown in the MP console (设置与开发 → 基本配置 → "
        f"服务器配置); the value given has {length} characters"
        + (", not all of them letters or digits" if odd else "")
    )


# -- signatures ---------------------------------------------------------------------------


def signature(*parts):
    """Return sha1 of the sorted concatenation of ``parts``, WeChat's push signature."""
    return hashlib.sha1("".join(sorted(str(p) for p in parts)).encode("utf-8")).hexdigest()


def check_signature(token, timestamp, nonce, signature_):
    """Raise BadPush unless ``signature_`` signs (token, timestamp, nonce)."""
    _check_params(timestamp, nonce)
    _compare(signature(token, timestamp, nonce), signature_, "bad signature")


def check_msg_signature(token, timestamp, nonce, encrypt, msg_signature):
    """Raise BadPush unless ``msg_signature`` signs (token, timestamp, nonce, Encrypt)."""
    _check_params(timestamp, nonce)
    if not isinstance(encrypt, str) or not encrypt:
        raise BadPush("no Encrypt")
    _compare(signature(token, timestamp, nonce, encrypt), msg_signature, "bad msg_signature")


def check_timestamp(timestamp, now, max_skew=MAX_SKEW):
    """Raise BadPush unless ``timestamp`` (seconds) is within ``max_skew`` of ``now``."""
    if not isinstance(timestamp, str) or not _DIGITS.fullmatch(timestamp):
        raise BadPush("bad timestamp")
    if abs(now - int(timestamp)) > max_skew:
        raise BadPush("stale timestamp", 403)


def verify_url(token, timestamp, nonce, signature_, echostr, now, max_skew=MAX_SKEW):
    """Return ``echostr`` for WeChat's URL check, or raise BadPush if WeChat did not sign it."""
    check_signature(token, timestamp, nonce, signature_)
    check_timestamp(timestamp, now, max_skew)
    if not isinstance(echostr, str) or not _ECHOSTR.fullmatch(echostr):
        raise BadPush("bad echostr")
    return echostr


def _check_params(timestamp, nonce):
    if not isinstance(timestamp, str) or not _DIGITS.fullmatch(timestamp):
        raise BadPush("bad timestamp")
    if not isinstance(nonce, str) or not _NONCE.fullmatch(nonce):
        raise BadPush("bad nonce")


def _compare(expected, given, reason):
    # Validate the shape first: compare_digest refuses non-ASCII str with a TypeError.
    if not isinstance(given, str) or not _SHA1_HEX.fullmatch(given):
        raise BadPush(reason, 403)
    if not hmac.compare_digest(expected.encode(), given.lower().encode()):
        raise BadPush(reason, 403)


# -- AES (compatible and safe mode) ------------------------------------------------------


class PushCipher:
    """AES-256-CBC of WeChat's push: key = b64decode(EncodingAESKey + "="), IV = key[:16]."""

    def __init__(self, aes_key, appid):
        validate_aes_key(aes_key)
        if not appid:
            raise ValueError("an AppID is needed to decrypt pushes (WX_APPID)")
        self._key = base64.b64decode(aes_key + "=")
        self._appid = appid.encode("utf-8")

    def __repr__(self):
        return "PushCipher(<key hidden>)"

    def encrypt(self, xml, prefix=None):
        """Return base64 of 16 random bytes + length + ``xml`` + AppID, padded and encrypted."""
        text = xml.encode("utf-8") if isinstance(xml, str) else bytes(xml)
        # 16 URL-safe characters, like WeChat's own samples (``prefix`` is for test vectors).
        prefix = secrets.token_urlsafe(12).encode() if prefix is None else bytes(prefix)
        if len(prefix) != 16:
            raise ValueError("the random prefix must be 16 bytes")
        plain = prefix + len(text).to_bytes(4, "big") + text + self._appid
        pad = _BLOCK - len(plain) % _BLOCK
        plain += bytes([pad]) * pad
        encryptor = self._cipher().encryptor()
        return base64.b64encode(encryptor.update(plain) + encryptor.finalize()).decode("ascii")

    def decrypt(self, encrypt):
        """Return the XML bytes inside ``encrypt``, or raise BadPush (padding, length, AppID)."""
        try:
            raw = base64.b64decode(encrypt, validate=True)
        except (ValueError, TypeError):  # binascii.Error is a ValueError
            raise BadPush("Encrypt is not base64") from None
        if not raw or len(raw) % _BLOCK:
            raise BadPush("bad ciphertext length")
        decryptor = self._cipher().decryptor()
        plain = decryptor.update(raw) + decryptor.finalize()
        pad = plain[-1]
        if not 1 <= pad <= _BLOCK or plain[-pad:] != bytes([pad]) * pad:
            raise BadPush("bad padding")
        content = plain[16:-pad]
        if len(content) < 4:
            raise BadPush("bad length")
        length = int.from_bytes(content[:4], "big")
        if length > len(content) - 4:
            raise BadPush("bad length")
        if not hmac.compare_digest(content[4 + length :], self._appid):
            raise BadPush("another AppID", 403)
        return content[4 : 4 + length]

    def _cipher(self):
        return Cipher(algorithms.AES(self._key), modes.CBC(self._key[:16]))


# -- XML ----------------------------------------------------------------------------------


def read_body(stream, max_bytes=MAX_BODY):
    """Return at most ``max_bytes`` read from ``stream``, or raise BadPush if there is more."""
    # One byte over the bound is enough to know; the rest is never read.
    data = stream.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise BadPush("body too large", 413)
    return data


def parse_xml(body, max_bytes=MAX_BODY):
    """Return the children of a push's ``<xml>`` root as a dict, refusing DTDs and entities."""
    if isinstance(body, str):
        body = body.encode("utf-8")
    if not isinstance(body, (bytes, bytearray)):
        raise BadPush("no body")
    if len(body) > max_bytes:
        raise BadPush("body too large", 413)
    if not body.strip():
        raise BadPush("no body")
    try:
        root = fromstring(bytes(body), forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except DefusedXmlException:
        raise BadPush("DTD or entities in XML") from None
    except (ParseError, ValueError, LookupError):  # LookupError: an unknown encoding="…"
        raise BadPush("malformed XML") from None
    if root.tag != "xml":
        raise BadPush("root element is not xml")
    fields = {}
    for child in root:
        if not isinstance(child.tag, str):
            continue
        if child.tag in fields:
            # Two FromUserName (say) would leave it to chance which one is applied.
            raise BadPush("repeated field")
        fields[child.tag] = _value(child, 1)
    return fields


def _value(element, depth):
    """Return an element's text, or a dict of its children (lists for repeated tags)."""
    children = [c for c in element if isinstance(c.tag, str)]
    if not children:
        return element.text or ""
    if depth >= _MAX_DEPTH:
        raise BadPush("XML nested too deep")
    out = {}
    for child in children:
        value = _value(child, depth + 1)
        if child.tag not in out:
            out[child.tag] = value
        elif isinstance(out[child.tag], list):
            out[child.tag].append(value)
        else:
            out[child.tag] = [out[child.tag], value]
    return out


def cdata(text):
    """Return ``text`` as CDATA sections that no ``]]>`` inside it can break out of."""
    text = _XML_ILLEGAL.sub("", str(text))
    return "<![CDATA[" + text.replace("]]>", "]]]]><![CDATA[>") + "]]>"


# -- the event model ----------------------------------------------------------------------


@dataclass(frozen=True)
class Event:
    """One push: a message or an event from a user, as WeChat sent it."""

    msg_type: str
    from_user: str
    to_user: str
    create_time: int
    event: str | None = None
    event_key: str | None = None
    ticket: str | None = None
    msg_id: str | None = None
    encrypted: bool = False
    fields: MappingProxyType = field(default_factory=lambda: MappingProxyType({}), repr=False)

    @classmethod
    def from_fields(cls, fields, encrypted=False):
        """Build an Event from ``parse_xml``'s dict, or raise BadPush if a required field lacks."""
        required = {}
        for name in ("MsgType", "FromUserName", "ToUserName", "CreateTime"):
            value = _text(fields, name)
            if not value:
                raise BadPush(f"no {name}")
            required[name] = value
        if not _DIGITS.fullmatch(required["CreateTime"]):
            raise BadPush("bad CreateTime")
        msg_id = _text(fields, "MsgId")
        if msg_id is not None and not re.fullmatch(r"[0-9]{1,20}", msg_id):
            raise BadPush("bad MsgId")
        return cls(
            msg_type=required["MsgType"],
            from_user=required["FromUserName"],
            to_user=required["ToUserName"],
            create_time=int(required["CreateTime"]),
            event=_text(fields, "Event"),
            event_key=_text(fields, "EventKey"),
            ticket=_text(fields, "Ticket"),
            msg_id=msg_id or None,
            encrypted=encrypted,
            fields=MappingProxyType(dict(fields)),
        )

    @property
    def is_event(self):
        """True for events (subscribe, SCAN, CLICK …), False for messages users send."""
        return self.msg_type == "event"

    @property
    def scene(self):
        """Return the parametric QR scene (subscribe ``qrscene_X`` or SCAN ``X``), else None."""
        if not self.is_event or not self.event_key:
            return None
        if self.event == SUBSCRIBE and self.event_key.startswith(QRSCENE_PREFIX):
            return self.event_key[len(QRSCENE_PREFIX) :] or None
        if self.event == SCAN:
            return self.event_key
        return None

    @property
    def dedupe_key(self):
        """Return what identifies this delivery across WeChat's retries (MsgId, else user+time)."""
        if self.msg_id:
            return f"msg:{self.msg_id}"
        return f"evt:{self.from_user}:{self.create_time}:{self.event or self.msg_type}"


def _text(fields, name):
    """Return a field's text stripped, None when absent; a nested field counts as absent."""
    value = fields.get(name)
    # WeChat never pads identifiers with whitespace; its own samples sometimes do.
    return value.strip() if isinstance(value, str) else None


# -- replies ------------------------------------------------------------------------------


def text_reply(to_user, from_user, content, create_time):
    """Return the XML of a passive text reply (to the push's FromUserName, from its ToUserName)."""
    return (
        f"<xml><ToUserName>{cdata(to_user)}</ToUserName>"
        f"<FromUserName>{cdata(from_user)}</FromUserName>"
        f"<CreateTime>{int(create_time)}</CreateTime>"
        f"<MsgType><![CDATA[text]]></MsgType>"
        f"<Content>{cdata(content)}</Content></xml>"
    )


def encrypted_reply(token, cipher, xml, timestamp, nonce, prefix=None):
    """Return the safe-mode envelope (Encrypt, MsgSignature, TimeStamp, Nonce) around ``xml``."""
    timestamp = str(int(timestamp))
    encrypt = cipher.encrypt(xml, prefix)
    return (
        f"<xml><Encrypt>{cdata(encrypt)}</Encrypt>"
        f"<MsgSignature>{cdata(signature(token, timestamp, nonce, encrypt))}</MsgSignature>"
        f"<TimeStamp>{timestamp}</TimeStamp>"
        f"<Nonce>{cdata(nonce)}</Nonce></xml>"
    )


# -- the receiver the blueprint calls ----------------------------------------------------


class PushReceiver:
    """Verify and read one Official Account's pushes; ``aes_key`` None means plaintext only.

    With an EncodingAESKey, plaintext pushes are refused unless ``allow_plaintext``: their
    bodies are signed by nothing, and compatible mode sends every push encrypted as well.
    """

    def __init__(
        self,
        token,
        appid=None,
        aes_key=None,
        clock=time.time,
        max_skew=MAX_SKEW,
        max_bytes=MAX_BODY,
        allow_plaintext=False,
    ):
        self._token = validate_token(token)
        self.appid = appid
        self._cipher = PushCipher(aes_key, appid) if aes_key is not None else None
        self.clock = clock
        self.max_skew = max_skew
        self.max_bytes = max_bytes
        self.allow_plaintext = allow_plaintext or self._cipher is None

    def __repr__(self):
        mode = "aes" if self._cipher else "plaintext"
        return f"PushReceiver(appid={self.appid!r}, mode={mode})"

    def verify_url(self, args):
        """Return the ``echostr`` to answer WeChat's GET, or raise BadPush."""
        return verify_url(
            self._token,
            args.get("timestamp"),
            args.get("nonce"),
            args.get("signature"),
            args.get("echostr"),
            self.clock(),
            self.max_skew,
        )

    def receive(self, args, body):
        """Return the Event in a POSTed push (query ``args``, raw ``body``), or raise BadPush."""
        timestamp, nonce = args.get("timestamp"), args.get("nonce")
        check_signature(self._token, timestamp, nonce, args.get("signature"))
        check_timestamp(timestamp, self.clock(), self.max_skew)
        encrypt_type = args.get("encrypt_type") or "raw"
        if encrypt_type == "raw":
            if not self.allow_plaintext:
                raise BadPush("plaintext push while an EncodingAESKey is configured", 403)
            return Event.from_fields(parse_xml(body, self.max_bytes))
        if encrypt_type != "aes":
            raise BadPush("unknown encrypt_type")
        if self._cipher is None:
            raise BadPush("encrypted push but no EncodingAESKey (WX_PUSH_AES_KEY)", 403)
        encrypt = parse_xml(body, self.max_bytes).get("Encrypt")
        check_msg_signature(self._token, timestamp, nonce, encrypt, args.get("msg_signature"))
        # Only what was inside the ciphertext is trusted; compatible mode's plaintext copy
        # beside it is signed by nothing.
        inner = parse_xml(self._cipher.decrypt(encrypt), self.max_bytes)
        return Event.from_fields(inner, encrypted=True)

    def reply_text(self, event, content, nonce=None):
        """Return the body of a passive text reply to ``event``, encrypted if the push was."""
        now = int(self.clock())
        xml = text_reply(event.from_user, event.to_user, content, now)
        if not event.encrypted:
            return xml
        if self._cipher is None:
            raise ValueError("an encrypted event needs a receiver with the EncodingAESKey")
        return encrypted_reply(self._token, self._cipher, xml, now, nonce or _nonce())


def _nonce():
    # Digits, as WeChat's own nonces are.
    return str(secrets.randbelow(10**10))
