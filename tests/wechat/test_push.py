"""Server push (SPEC §4): WeChat's published vectors, wechatpy both ways, and every refusal."""

import base64
import io
import pathlib

import pytest
import wechatpy
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from defusedxml.ElementTree import fromstring
from wechatpy.crypto import PrpCrypto, WeChatCrypto
from wechatpy.exceptions import InvalidSignatureException
from wechatpy.utils import check_signature as wechatpy_check_signature

from wxsite.wechat import push
from wxsite.wechat.push import BadPush, Event, PushCipher, PushReceiver

DATA = pathlib.Path(__file__).parent.parent / "data" / "push"

# WeChat's 消息加解密 sample (cryptoDemo, Python/Sample.py; the same values in its Go, PHP and
# Node ports): a text message from a user, as WeChat pushes it in compatible mode.
TOKEN = "spamtest"
AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
APPID = "wx2c2769f8efd9abc2"
TIMESTAMP = "1409735669"
NONCE = "1320562132"
MSG_SIGNATURE = "5d197aaffba7e9b25a30732f161a50dee96bd5fa"
ENCRYPT = (
    "hyzAe4OzmOMbd6TvGdIOO6uBmdJoD0Fk53REIHvxYtJlE2B655HuD0m8KUePWB3+LrPXo87wzQ1QLvbeUgmBM4x6F8P"
    "GHQHFVAFmOD2LdJF9FrXpbUAh0B5GIItb52sn896wVsMSHGuPE328HnRGBcrS7C41IzDWyWNlZkyyXwon8T332jis"
    "a+h6tEDYsVticbSnyU8dKOIbgU6ux5VTjg3yt+WGzjlpKn6NPhRjpA912xMezR4kw6KWwMrCVKSVCZciVGCgavjIQ"
    "6X8tCOp3yZbGpy0VxpAe+77TszTfRd5RJSVO/HTnifJpXgCSUdUue1v6h0EIBYYI1BD1DlD+C0CR8e6OewpusjZ4u"
    "Bl9FyJvnhvQl+q5rv1ixrcpCumEPo5MJSgM9ehVsNPfUM669WuMyVWQLCzpu9GhglF2PE="
)
FROM_XML = (
    "<xml><ToUserName><![CDATA[gh_10f6c3c3ac5a]]></ToUserName>"
    "<FromUserName><![CDATA[oyORnuP8q7ou2gfYjqLzSIWZf0rs]]></FromUserName>"
    "<CreateTime>1409735668</CreateTime><MsgType><![CDATA[text]]></MsgType>"
    "<Content><![CDATA[abcdteT]]></Content><MsgId>6054768590064713728</MsgId>"
    f"<Encrypt><![CDATA[{ENCRYPT}]]></Encrypt></xml>"
)
# What ENCRYPT holds (the sample prints it; its lines end with "\n").
INNER_XML = (
    "<xml><ToUserName><![CDATA[gh_10f6c3c3ac5a]]></ToUserName>\n"
    "<FromUserName><![CDATA[oyORnuP8q7ou2gfYjqLzSIWZf0rs]]></FromUserName>\n"
    "<CreateTime>1409735668</CreateTime>\n<MsgType><![CDATA[text]]></MsgType>\n"
    "<Content><![CDATA[abcdteT]]></Content>\n<MsgId>6054768590064713728</MsgId>\n</xml>"
)

# The same demo's Java test (WXBizMsgCryptTest.java, also WxJava's WxCryptUtilTest): a fixed
# random prefix, so the ciphertext is exact.
JAVA_TOKEN = "pamtest"
JAVA_APPID = "wxb11529c136998cb6"
JAVA_PREFIX = b"aaaabbbbccccdddd"
JAVA_REPLY = "我是中文abcd123"
JAVA_ENCRYPTED = (
    "jn1L23DB+6ELqJ+6bruv21Y6MD7KeIfP82D6gU39rmkgczbWwt5+3bnyg5K55bgVtVzd832WzZGMhkP72vVOfg=="
)
JAVA_REPLY2 = (
    "<xml><ToUserName><![CDATA[oia2Tj我是中文jewbmiOUlr6X-1crbLOvLw]]></ToUserName>"
    "<FromUserName><![CDATA[gh_7f083739789a]]></FromUserName><CreateTime>1407743423</CreateTime>"
    "<MsgType><![CDATA[video]]></MsgType><Video><MediaId><![CDATA[eYJ1MbwPRJtOvIEabaxHs7TX2D-HV71"
    "s79GUxqdUkjm6Gs2Ed1KF3ulAOA9H1xG0]]></MediaId>"
    "<Title><![CDATA[testCallBackReplyVideo]]></Title>"
    "<Description><![CDATA[testCallBackReplyVideo]]></Description></Video></xml>"
)
JAVA_ENCRYPTED2 = (
    "jn1L23DB+6ELqJ+6bruv23M2GmYfkv0xBh2h+XTBOKVKcgDFHle6gqcZ1cZrk3e1qjPQ1F4RsLWzQRG9udbKWesxlku"
    "pqcEcW7ZQweImX9+wLMa0GaUzpkycA8+IamDBxn5loLgZpnS7fVAbExOkK5DYHBmv5tptA9tklE/fTIILHR8HLXa5nQ"
    "vFb3tYPKAlHF3rtTeayNf0QuM+UW/wM9enGIDIJHF7CLHiDNAYxr+r+OrJCmPQyTy8cVWlu9iSvOHPT/77bZqJucQHQ"
    "04sq7KZI27OcqpQNSto2OdHCoTccjggX5Z9Mma0nMJBU+jLKJ38YB1fBIz+vBzsYjrTmFQ44YfeEuZ+xRTQwr92vhA9"
    "OxchWVINGC50qE/6lmkwWTwGX9wtQpsJKhP+oS7rvTY8+VdzETdfakjkwQ5/Xka042OlUb1/slTwo4RscuQ+RdxSGvD"
    "ahxAJ6+EAjLt9d8igHngxIbf6YyqqROxuxqIeIch3CssH/LqRs+iAcILvApYZckqmA7FNERspKA5f8GoJ9sv8xmGvZ9"
    "Yrf57cExWtnX8aCMMaBropU/1k+hKP5LVdzbWCG0hGwx/dQudYR/eXp3P0XxjlFiy+9DMlaFExWUZQDajPkdPrEeOwo"
    "fJb"
)

NOW = int(TIMESTAMP) + 1
SECRETS = (TOKEN, AES_KEY)


def fixture(name):
    return (DATA / name).read_bytes()


def receiver(aes_key=AES_KEY, **kwargs):
    kwargs.setdefault("clock", lambda: NOW)
    return PushReceiver(TOKEN, APPID, aes_key, **kwargs)


def query(timestamp=TIMESTAMP, nonce=NONCE, encrypt=None, **extra):
    """Return the query WeChat would send: signed, and msg_signed when ``encrypt`` is given."""
    args = {
        "signature": push.signature(TOKEN, timestamp, nonce),
        "timestamp": timestamp,
        "nonce": nonce,
        "openid": "oyORnuP8q7ou2gfYjqLzSIWZf0rs",
    }
    if encrypt is not None:
        args["encrypt_type"] = "aes"
        args["msg_signature"] = push.signature(TOKEN, timestamp, nonce, encrypt)
    args.update(extra)
    return args


def envelope(encrypt):
    """Return a safe-mode body: the account's id and the ciphertext, nothing else."""
    return (
        "<xml><ToUserName><![CDATA[gh_10f6c3c3ac5a]]></ToUserName>"
        f"<Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>"
    )


def raw_aes(plain, key=AES_KEY):
    """Encrypt ``plain`` (already padded) with the push key, bypassing PushCipher's framing."""
    k = base64.b64decode(key + "=")
    enc = Cipher(algorithms.AES(k), modes.CBC(k[:16])).encryptor()
    return base64.b64encode(enc.update(plain) + enc.finalize()).decode()


def refused(call, *args, reason=None, **kwargs):
    """Assert ``call`` raises BadPush, with no secret and no payload in it; return it."""
    with pytest.raises(BadPush) as info:
        call(*args, **kwargs)
    exc = info.value
    assert 400 <= exc.status < 500
    assert str(exc) == exc.reason and len(exc.reason) < 80
    for secret in SECRETS:
        assert secret not in exc.reason
    assert "oyORnuP8" not in exc.reason and "<" not in exc.reason
    if reason:
        assert exc.reason == reason
    return exc


# -- WeChat's published vectors --------------------------------------------------------------


def test_official_sample_msg_signature():
    assert push.signature(TOKEN, TIMESTAMP, NONCE, ENCRYPT) == MSG_SIGNATURE
    push.check_msg_signature(TOKEN, TIMESTAMP, NONCE, ENCRYPT, MSG_SIGNATURE)
    push.check_msg_signature(TOKEN, TIMESTAMP, NONCE, ENCRYPT, MSG_SIGNATURE.upper())


def test_official_sample_decrypts():
    assert PushCipher(AES_KEY, APPID).decrypt(ENCRYPT) == INNER_XML.encode()


def test_official_sample_received_in_compatible_mode():
    args = query()
    args.update(encrypt_type="aes", msg_signature=MSG_SIGNATURE)
    event = receiver().receive(args, FROM_XML)
    assert event == Event(
        msg_type="text",
        from_user="oyORnuP8q7ou2gfYjqLzSIWZf0rs",
        to_user="gh_10f6c3c3ac5a",
        create_time=1409735668,
        msg_id="6054768590064713728",
        encrypted=True,
        fields=push.parse_xml(INNER_XML),
    )
    assert event.fields["Content"] == "abcdteT"
    assert "Encrypt" not in event.fields  # the decrypted copy, not the envelope
    assert event.dedupe_key == "msg:6054768590064713728"


@pytest.mark.parametrize(
    "plain, expected", [(JAVA_REPLY, JAVA_ENCRYPTED), (JAVA_REPLY2, JAVA_ENCRYPTED2)]
)
def test_official_java_vectors_encrypt_exactly(plain, expected):
    cipher = PushCipher(AES_KEY, JAVA_APPID)
    assert cipher.encrypt(plain, JAVA_PREFIX) == expected
    assert cipher.decrypt(expected) == plain.encode()


def test_signature_agrees_with_wechatpy():
    for timestamp, nonce in [("1409735669", "1320562132"), ("1", "9"), ("1700000000", "abc_-9")]:
        sig = push.signature(TOKEN, timestamp, nonce)
        push.check_signature(TOKEN, timestamp, nonce, sig)
        wechatpy_check_signature(TOKEN, sig, timestamp, nonce)
        with pytest.raises(InvalidSignatureException):
            wechatpy_check_signature(
                TOKEN, push.signature("other", timestamp, nonce), timestamp, nonce
            )


# -- wechatpy, both ways ---------------------------------------------------------------------


class FixedPrefix(PrpCrypto):
    def get_random_string(self):
        return "0123456789abcdef"


@pytest.mark.parametrize("length", [0, 1, 11, 12, 13, 43, 44, 45, 300])
def test_same_ciphertext_as_wechatpy(length):
    # Lengths around 32-byte boundaries of 16 + 4 + text + 18 (the AppID): pads of 32 and 1.
    text = ("x" * length).encode()
    ours = PushCipher(AES_KEY, APPID).encrypt(text, b"0123456789abcdef")
    assert ours == FixedPrefix(base64.b64decode(AES_KEY + "=")).encrypt(text, APPID).decode()


@pytest.mark.parametrize("fixture_name", ["subscribe_qrscene.xml", "text.xml", "scan.xml"])
def test_wechatpy_encrypts_we_receive(fixture_name):
    plain = fixture(fixture_name).decode()
    reply = WeChatCrypto(TOKEN, AES_KEY, APPID).encrypt_message(plain, NONCE, TIMESTAMP)
    fields = push.parse_xml(reply)
    args = query()
    args.update(encrypt_type="aes", msg_signature=fields["MsgSignature"])
    event = receiver().receive(args, envelope(fields["Encrypt"]))
    assert event.encrypted
    assert event.fields == push.parse_xml(plain)


def test_we_encrypt_wechatpy_receives():
    r = receiver()
    event = Event.from_fields(push.parse_xml(fixture("text.xml")), encrypted=True)
    body = r.reply_text(event, "收到 ]]> <b>&amp;</b>", nonce="424242")
    fields = push.parse_xml(body)
    assert set(fields) == {"Encrypt", "MsgSignature", "TimeStamp", "Nonce"}
    assert fields["TimeStamp"] == str(NOW) and fields["Nonce"] == "424242"
    plain = WeChatCrypto(TOKEN, AES_KEY, APPID).decrypt_message(
        body, fields["MsgSignature"], fields["TimeStamp"], fields["Nonce"]
    )
    message = wechatpy.parse_message(plain)
    assert message.type == "text"
    assert message.content == "收到 ]]> <b>&amp;</b>"
    assert message.target == "oFollower0000000000000000001"
    assert message.source == "gh_0123456789ab"


def test_our_reply_envelope_decrypts_as_wechat_would():
    cipher = PushCipher(AES_KEY, APPID)
    xml = push.text_reply("oUser", "gh_x", "hello", 1700000000)
    body = push.encrypted_reply(TOKEN, cipher, xml, 1700000000, "77")
    fields = push.parse_xml(body)
    push.check_msg_signature(TOKEN, "1700000000", "77", fields["Encrypt"], fields["MsgSignature"])
    assert cipher.decrypt(fields["Encrypt"]).decode() == xml


def test_plaintext_mode():
    r = receiver(aes_key=None)
    event = r.receive(query(), fixture("subscribe_qrscene.xml"))
    assert not event.encrypted
    assert (event.msg_type, event.event, event.scene) == ("event", "subscribe", "login-4f2a")
    reply = r.reply_text(event, "欢迎")
    assert wechatpy.parse_message(reply).content == "欢迎"


def test_compatible_mode_trusts_only_the_ciphertext():
    inner = fixture("click.xml").decode()
    encrypt = PrpCrypto(base64.b64decode(AES_KEY + "=")).encrypt(inner, APPID).decode()
    # Compatible mode: the plaintext fields beside Encrypt, here altered in transit.
    outer = inner.replace("oFollower0000000000000000001", "oSomeoneElse").replace(
        "</xml>", f"<Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>"
    )
    event = receiver().receive(query(encrypt=encrypt), outer)
    assert event.from_user == "oFollower0000000000000000001"
    assert (event.event, event.event_key) == ("CLICK", "MENU_ORDERS")


def test_aes_round_trip_every_padding():
    cipher = PushCipher(AES_KEY, APPID)
    for length in range(0, 80):
        text = ("中" * length).encode()[:length]
        assert cipher.decrypt(cipher.encrypt(text)) == text


def test_random_prefix_differs():
    cipher = PushCipher(AES_KEY, APPID)
    assert cipher.encrypt("<xml/>") != cipher.encrypt("<xml/>")


# -- URL verification and timestamps ---------------------------------------------------------


def test_verify_url_answers_echostr():
    assert receiver().verify_url(query(echostr="4075181314397890557")) == "4075181314397890557"


@pytest.mark.parametrize(
    "change",
    [
        {"signature": "0" * 40},
        {"signature": None},
        {"signature": "５" * 40},  # full-width digits
        {"nonce": "1320562133"},
        {"echostr": None},
        {"echostr": "<script>alert(1)</script>"},
        {"timestamp": str(NOW - 301)},
    ],
)
def test_verify_url_refuses(change):
    args = query(echostr="4075181314397890557")
    args.update(change)
    refused(receiver().verify_url, args)


def test_timestamp_window_is_configurable():
    r = receiver(aes_key=None, max_skew=60)
    assert r.receive(query(timestamp=str(NOW - 60)), fixture("text.xml")).msg_type == "text"
    assert r.receive(query(timestamp=str(NOW + 60)), fixture("text.xml")).msg_type == "text"
    refused(
        r.receive, query(timestamp=str(NOW - 61)), fixture("text.xml"), reason="stale timestamp"
    )
    refused(
        r.receive, query(timestamp=str(NOW + 61)), fixture("text.xml"), reason="stale timestamp"
    )
    push.check_timestamp("1000", 1300)
    refused(push.check_timestamp, "1000", 1301)


@pytest.mark.parametrize("timestamp", ["", "-5", "1e9", "١٤٠٩٧٣٥٦٦٩", "14097356691409735669", None])
def test_malformed_timestamps(timestamp):
    args = query()
    args["timestamp"] = timestamp
    refused(receiver(aes_key=None).receive, args, fixture("text.xml"), reason="bad timestamp")


# -- refusals: crypto ------------------------------------------------------------------------


def signed(encrypt):
    """Return (args, body) of a push whose ciphertext is signed by someone holding the token."""
    return query(encrypt=encrypt), envelope(encrypt)


def flip(encrypt, index, mask=0x01):
    raw = bytearray(base64.b64decode(encrypt))
    raw[index] ^= mask
    return base64.b64encode(bytes(raw)).decode()


def test_tampered_ciphertext_fails_msg_signature():
    args = query()
    args.update(encrypt_type="aes", msg_signature=MSG_SIGNATURE)
    refused(receiver().receive, args, envelope(flip(ENCRYPT, 40)), reason="bad msg_signature")


def test_tampered_padding_resigned():
    # CBC: flipping the last byte of the next-to-last AES block (16 bytes) flips the same bit
    # of the padding byte, 2 → 3 or 2 → 0.
    size = len(base64.b64decode(ENCRYPT))
    refused(receiver().receive, *signed(flip(ENCRYPT, size - 17)), reason="bad padding")
    refused(receiver().receive, *signed(flip(ENCRYPT, size - 17, 0x02)), reason="bad padding")
    # One AES block earlier it lands in the AppID.
    refused(receiver().receive, *signed(flip(ENCRYPT, size - 33)), reason="another AppID")


def test_tampered_length_resigned():
    # The first block's byte 0 flips plaintext byte 16: the top byte of the XML length.
    refused(receiver().receive, *signed(flip(ENCRYPT, 0, 0x80)), reason="bad length")


def test_tampered_last_block_resigned():
    # Any bit flipped in the last two AES blocks spoils the padding or the AppID.
    size = len(base64.b64decode(ENCRYPT))
    for index in range(size - 32, size):
        refused(receiver().receive, *signed(flip(ENCRYPT, index)))


def test_wrong_appid():
    encrypt = PushCipher(AES_KEY, "wx0000000000000000").encrypt(fixture("text.xml"))
    refused(receiver().receive, *signed(encrypt), reason="another AppID")
    # The official sample, read by a site with another AppID.
    args = query()
    args.update(encrypt_type="aes", msg_signature=MSG_SIGNATURE)
    r = PushReceiver(TOKEN, "wx0000000000000000", AES_KEY, clock=lambda: NOW)
    refused(r.receive, args, FROM_XML, reason="another AppID")


def test_wrong_key():
    other = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789abcdefg"
    encrypt = PushCipher(other, APPID).encrypt(fixture("text.xml"))
    refused(receiver().receive, *signed(encrypt))


def crafted(xml=b"<xml/>", appid=APPID.encode(), length=None, padding=None):
    """Return a push plaintext framed as WeChat does, with ``padding(n)`` instead of PKCS#7."""
    body = b"R" * 16 + (len(xml) if length is None else length).to_bytes(4, "big") + xml + appid
    n = 32 - len(body) % 32
    return body + (bytes([n]) * n if padding is None else padding(n))


def test_crafted_plaintext_that_is_right():
    cipher = PushCipher(AES_KEY, APPID)
    # 16 + 4 + 6 + 18 = 44 → 20 bytes of padding; with 26 bytes of XML, 64 → a whole block of 32.
    for xml in (b"<xml/>", b"<xml>" + b"x" * 19 + b"/>"):
        assert cipher.decrypt(raw_aes(crafted(xml))) == xml
    assert crafted(b"<xml>" + b"x" * 19 + b"/>")[-32:] == bytes([32]) * 32


@pytest.mark.parametrize(
    "plain, reason",
    [
        (crafted(padding=lambda n: b"\x00" * n), "bad padding"),
        (crafted(padding=lambda n: bytes([1]) * (n - 1) + bytes([n])), "bad padding"),
        (crafted(padding=lambda n: bytes([n]) * (n - 1) + bytes([n - 1])), "bad padding"),
        (crafted(padding=lambda n: bytes([33]) * n), "bad padding"),
        (crafted(padding=lambda n: bytes([255]) * n), "bad padding"),
        (b"R" * 16 + bytes([16]) * 16, "bad length"),  # nothing after the random prefix
        (b"R" * 16 + b"\x00\x00" + bytes([14]) * 14, "bad length"),  # half a length
        (crafted(length=1000), "bad length"),
        (crafted(length=2**32 - 1), "bad length"),
        (crafted(appid=b"wx2c2769f8efd9abc3"), "another AppID"),
        (crafted(appid=b""), "another AppID"),
        (crafted(appid=APPID.encode() + b"x"), "another AppID"),
    ],
)
def test_crafted_plaintexts_refused(plain, reason):
    refused(PushCipher(AES_KEY, APPID).decrypt, raw_aes(plain), reason=reason)


def test_empty_xml_inside():
    encrypt = raw_aes(crafted(xml=b""))
    assert PushCipher(AES_KEY, APPID).decrypt(encrypt) == b""
    refused(receiver().receive, *signed(encrypt), reason="no body")


def test_ciphertext_not_in_32_byte_blocks():
    # AES would take 48 bytes; WeChat always pads to 32, so anything else is not WeChat's.
    refused(PushCipher(AES_KEY, APPID).decrypt, raw_aes(b"x" * 48), reason="bad ciphertext length")


@pytest.mark.parametrize(
    "encrypt, reason",
    [
        (ENCRYPT[:-3], "Encrypt is not base64"),  # cut mid-quantum
        (ENCRYPT[:-4], "bad ciphertext length"),  # cut on a quantum, not on a block
        (ENCRYPT[:-44], "bad padding"),  # cut on a 32-byte block (still signed)
        (ENCRYPT[:100] + "\n" + ENCRYPT[100:], "Encrypt is not base64"),
        (ENCRYPT.replace("+", "-"), "Encrypt is not base64"),
        ("", "no Encrypt"),
        ("密文", "Encrypt is not base64"),
    ],
)
def test_truncated_or_garbled_base64(encrypt, reason):
    refused(receiver().receive, *signed(encrypt), reason=reason)


def test_encrypt_absent_or_nested():
    body = "<xml><ToUserName>gh</ToUserName><Encrypt><a>b</a></Encrypt></xml>"
    refused(receiver().receive, query(encrypt="x"), body, reason="no Encrypt")
    refused(receiver().receive, query(encrypt="x"), fixture("text.xml"), reason="no Encrypt")


def test_mode_mismatches():
    encrypt = PushCipher(AES_KEY, APPID).encrypt(fixture("text.xml"))
    refused(receiver(aes_key=None).receive, *signed(encrypt))
    refused(receiver().receive, query(), fixture("text.xml"))  # plaintext while AES is set
    assert receiver(allow_plaintext=True).receive(query(), fixture("text.xml")).msg_type == "text"
    refused(receiver().receive, query(encrypt_type="des"), fixture("text.xml"))
    assert receiver(aes_key=None).receive(query(encrypt_type="raw"), fixture("text.xml"))


# -- refusals: XML ---------------------------------------------------------------------------


def test_oversized_body():
    big = b"<xml><Content>" + b"x" * push.MAX_BODY + b"</Content></xml>"
    exc = refused(receiver(aes_key=None).receive, query(), big, reason="body too large")
    assert exc.status == 413
    refused(push.parse_xml, fixture("text.xml"), max_bytes=100, reason="body too large")
    # The bound holds inside the ciphertext too.
    encrypt = PushCipher(AES_KEY, APPID).encrypt(fixture("text.xml"))
    r = receiver(max_bytes=len(envelope(encrypt)))
    assert r.receive(*signed(encrypt)).msg_type == "text"
    refused(receiver(max_bytes=len(envelope(encrypt)) - 1).receive, *signed(encrypt))


def test_read_body_stops_at_the_bound():
    class Stream(io.BytesIO):
        asked = []

        def read(self, size=-1):
            self.asked.append(size)
            return super().read(size)

    stream = Stream(b"x" * 1000)
    refused(push.read_body, stream, 100, reason="body too large")
    assert Stream.asked == [101]
    assert push.read_body(io.BytesIO(b"<xml/>")) == b"<xml/>"


@pytest.mark.parametrize(
    "body",
    [
        fixture("billion_laughs.xml"),
        fixture("external_entity.xml"),
        b'<!DOCTYPE xml SYSTEM "http://attacker.example/x.dtd"><xml><a>1</a></xml>',
        b'<!DOCTYPE xml [<!ENTITY % p SYSTEM "http://attacker.example/p">%p;]><xml/>',
        b"<!DOCTYPE xml><xml><MsgType>text</MsgType></xml>",
    ],
    ids=["billion-laughs", "external-entity", "external-dtd", "parameter-entity", "doctype"],
)
def test_dtd_and_entities_refused(body):
    refused(receiver(aes_key=None).receive, query(), body, reason="DTD or entities in XML")
    # Inside a valid ciphertext as well.
    encrypt = PushCipher(AES_KEY, APPID).encrypt(body)
    refused(receiver().receive, *signed(encrypt), reason="DTD or entities in XML")


@pytest.mark.parametrize(
    "body, reason",
    [
        (b"<root><MsgType>text</MsgType></root>", "root element is not xml"),
        (b'<xml xmlns="urn:x"><MsgType>text</MsgType></xml>', "root element is not xml"),
        (b"<xml><MsgType>text</MsgType>", "malformed XML"),
        (b"not xml at all", "malformed XML"),
        (b"\xff\xfe<\x00x\x00", "malformed XML"),
        (b'<?xml version="1.0" encoding="bogus"?><xml/>', "malformed XML"),
        (b"", "no body"),
        (b"   \n", "no body"),
        (None, "no body"),
        (
            b"<xml><FromUserName>a</FromUserName><FromUserName>b</FromUserName></xml>",
            "repeated field",
        ),
        (b"<xml>" + b"<a>" * 5 + b"x" + b"</a>" * 5 + b"</xml>", "XML nested too deep"),
        (b"<xml><MsgType>event</MsgType></xml>", "no FromUserName"),
    ],
)
def test_malformed_bodies(body, reason):
    refused(receiver(aes_key=None).receive, query(), body, reason=reason)


@pytest.mark.parametrize(
    "name, value, reason",
    [
        ("CreateTime", "١٧٠٠٠٠٠٠٠٠", "bad CreateTime"),
        ("CreateTime", "", "no CreateTime"),
        ("MsgId", "12ab", "bad MsgId"),
        ("MsgType", "", "no MsgType"),
    ],
)
def test_bad_fields(name, value, reason):
    fields = push.parse_xml(fixture("text.xml"))
    fields[name] = value
    refused(Event.from_fields, fields, reason=reason)


# -- the event model -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, msg_type, event, event_key, scene",
    [
        ("subscribe_qrscene.xml", "event", "subscribe", "qrscene_login-4f2a", "login-4f2a"),
        ("subscribe.xml", "event", "subscribe", "", None),
        ("unsubscribe.xml", "event", "unsubscribe", "", None),
        ("scan.xml", "event", "SCAN", "login-4f2a", "login-4f2a"),
        ("click.xml", "event", "CLICK", "MENU_ORDERS", None),
        ("view.xml", "event", "VIEW", "https://wxsite.example/account", None),
        ("scancode_push.xml", "event", "scancode_push", "MENU_SCAN", None),
        ("text.xml", "text", None, None, None),
    ],
)
def test_events(name, msg_type, event, event_key, scene):
    got = receiver(aes_key=None).receive(query(), fixture(name))
    assert (got.msg_type, got.event, got.event_key, got.scene) == (
        msg_type,
        event,
        event_key,
        scene,
    )
    assert got.from_user == "oFollower0000000000000000001"
    assert got.to_user == "gh_0123456789ab"
    assert got.is_event == (msg_type == "event")
    # wechatpy reads the same push the same way.
    theirs = wechatpy.parse_message(fixture(name).decode())
    assert (theirs.source, theirs.target) == (got.from_user, got.to_user)
    assert int(theirs.create_time.timestamp()) == got.create_time
    if scene is not None:
        assert theirs.scene_id == scene
        assert theirs.ticket == got.ticket


def test_nested_fields_kept_as_dicts():
    got = push.parse_xml(fixture("scancode_push.xml"))
    assert got["ScanCodeInfo"] == {"ScanType": "qrcode", "ScanResult": "1"}
    pics = push.parse_xml(
        b"<xml><SendPicsInfo><Count>2</Count><PicList><item><PicMd5Sum>a</PicMd5Sum></item>"
        b"<item><PicMd5Sum>b</PicMd5Sum></item></PicList></SendPicsInfo></xml>"
    )
    assert pics["SendPicsInfo"]["PicList"]["item"] == [{"PicMd5Sum": "a"}, {"PicMd5Sum": "b"}]


def test_text_content_kept_as_sent():
    got = receiver(aes_key=None).receive(query(), fixture("text.xml"))
    assert got.fields["Content"] == "你好 <b>&amp; ]]>"
    assert got.msg_id == "243212345678901256"


def test_dedupe_keys():
    def event(name, **change):
        fields = push.parse_xml(fixture(name))
        fields.update(change)
        return Event.from_fields(fields)

    # A retry (same MsgId, or same user, time and event) has the same key, even re-encrypted.
    assert event("text.xml").dedupe_key == "msg:243212345678901256"
    assert event("text.xml").dedupe_key == event("text.xml", CreateTime="1700000999").dedupe_key
    assert (
        event("subscribe.xml").dedupe_key == "evt:oFollower0000000000000000001:1700000000:subscribe"
    )
    assert event("subscribe.xml").dedupe_key == event("subscribe_qrscene.xml").dedupe_key
    # Different events, users or seconds are different deliveries.
    keys = {
        event("subscribe.xml").dedupe_key,
        event("subscribe.xml", Event="unsubscribe").dedupe_key,
        event("subscribe.xml", FromUserName="oOther").dedupe_key,
        event("subscribe.xml", CreateTime="1700000001").dedupe_key,
    }
    assert len(keys) == 4


def test_event_is_read_only():
    got = Event.from_fields(push.parse_xml(fixture("click.xml")))
    with pytest.raises(AttributeError):
        got.from_user = "x"
    with pytest.raises(TypeError):
        got.fields["EventKey"] = "x"


# -- replies ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content",
    [
        "plain",
        "]]>",
        "a]]>b]]>",
        "]]]]>",
        "<![CDATA[x]]>",
        "</Content></xml><xml>",
        "中文 & <b>",
        "",
    ],
)
def test_text_reply_cdata_cannot_break_out(content):
    xml = push.text_reply("oUser]]><x>", "gh_0123456789ab", content, 1700000000)
    fields = push.parse_xml(xml)
    assert fields == {
        "ToUserName": "oUser]]><x>",
        "FromUserName": "gh_0123456789ab",
        "CreateTime": "1700000000",
        "MsgType": "text",
        "Content": content,
    }
    assert fromstring(xml).tag == "xml"


def test_text_reply_drops_characters_xml_cannot_carry():
    xml = push.text_reply("oUser", "gh", "a\x00b\x1bc\td\ne\ud800\uffff😀", 1)
    assert push.parse_xml(xml)["Content"] == "abc\td\ne😀"


def test_reply_text_swaps_users():
    got = receiver(aes_key=None).receive(query(), fixture("click.xml"))
    fields = push.parse_xml(receiver(aes_key=None).reply_text(got, "ok"))
    assert (fields["ToUserName"], fields["FromUserName"]) == (got.from_user, got.to_user)
    assert fields["CreateTime"] == str(NOW)


# -- configuration ---------------------------------------------------------------------------


@pytest.mark.parametrize("token", ["abc", "A" * 32, "spamtest", "Tok3n"])
def test_valid_tokens(token):
    assert push.validate_token(token) == token


@pytest.mark.parametrize(
    "token", ["ab", "A" * 33, "spam test", "spam-test", "令牌令牌", "١٢٣٤", "", None, "tok\n"]
)
def test_invalid_tokens(token):
    with pytest.raises(ValueError) as info:
        push.validate_token(token)
    message = str(info.value)
    assert message.startswith("WX_PUSH_TOKEN must be 3 to 32 letters or digits")
    if token:
        assert token not in message
    with pytest.raises(ValueError):
        PushReceiver(token)


@pytest.mark.parametrize(
    "key",
    [AES_KEY[:42], AES_KEY + "H", AES_KEY[:42] + "=", AES_KEY[:42] + "+", AES_KEY[:42] + "٣", None],
)
def test_invalid_aes_keys(key):
    with pytest.raises(ValueError) as info:
        push.validate_aes_key(key, name="MY_KEY")
    message = str(info.value)
    assert message.startswith("MY_KEY must be exactly 43 letters or digits")
    if key:
        assert key not in message and key[:20] not in message
    with pytest.raises(ValueError):
        PushReceiver(TOKEN, APPID, key or "")


def test_aes_needs_an_appid():
    with pytest.raises(ValueError, match="AppID"):
        PushReceiver(TOKEN, None, AES_KEY)


def test_reprs_hide_secrets():
    for obj in (receiver(), PushCipher(AES_KEY, APPID)):
        assert TOKEN not in repr(obj) and AES_KEY not in repr(obj)
