"""Server push from the emulator: WeChat's signatures and AES, delivery, retries, tampering."""

import base64
import hashlib
import json
import time
from xml.etree import ElementTree

import pytest

from wxsite.emulator import push
from .conftest import APPID, APPID_2
from .receiver import Answer, Receiver

TOKEN = "emuPushToken1"
AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"

# WeChat's published 消息加解密 sample (the cryptoDemo of the MP documentation).
SAMPLE_TOKEN = "spamtest"
SAMPLE_APPID = "wx2c2769f8efd9abc2"
SAMPLE_TIMESTAMP, SAMPLE_NONCE = "1409735669", "1320562132"
SAMPLE_MSG_SIGNATURE = "5d197aaffba7e9b25a30732f161a50dee96bd5fa"
SAMPLE_ENCRYPT = (
    "hyzAe4OzmOMbd6TvGdIOO6uBmdJoD0Fk53REIHvxYtJlE2B655HuD0m8KUePWB3+LrPXo87wzQ1QLvbeUgmBM4x6F8P"
    "GHQHFVAFmOD2LdJF9FrXpbUAh0B5GIItb52sn896wVsMSHGuPE328HnRGBcrS7C41IzDWyWNlZkyyXwon8T332jis"
    "a+h6tEDYsVticbSnyU8dKOIbgU6ux5VTjg3yt+WGzjlpKn6NPhRjpA912xMezR4kw6KWwMrCVKSVCZciVGCgavjIQ6"
    "X8tCOp3yZbGpy0VxpAe+77TszTfRd5RJSVO/HTnifJpXgCSUdUue1v6h0EIBYYI1BD1DlD+C0CR8e6OewpusjZ4uBl9"
    "FyJvnhvQl+q5rv1ixrcpCumEPo5MJSgM9ehVsNPfUM669WuMyVWQLCzpu9GhglF2PE="
)
# The Java sample's fixed random prefix and its ciphertext.
JAVA_APPID, JAVA_PREFIX = "wxb11529c136998cb6", b"aaaabbbbccccdddd"
JAVA_ENCRYPT = (
    "jn1L23DB+6ELqJ+6bruv21Y6MD7KeIfP82D6gU39rmkgczbWwt5+3bnyg5K55bgVtVzd832WzZGMhkP72vVOfg=="
)


def sha1_sorted(*parts):
    """WeChat's signature, written again here so a test never trusts the code it checks."""
    return hashlib.sha1("".join(sorted(parts)).encode()).hexdigest()


def fields(xml):
    """Return the children of an <xml> document as a dict."""
    return {child.tag: child.text or "" for child in ElementTree.fromstring(xml)}


@pytest.fixture
def receiver():
    running = Receiver().start()
    yield running
    running.stop()


@pytest.fixture
def configure(emulator, receiver):
    """Point APPID's push at the receiver in a mode; short timeouts so retries are quick."""

    def configure(mode=push.PLAINTEXT, appid=APPID, **options):
        options.setdefault("timeout", 2.0)
        options.setdefault("retry_delay", 0.01)
        aes_key = None if mode == push.PLAINTEXT else AES_KEY
        return emulator.control.push_config(receiver.url, TOKEN, aes_key, mode, appid, **options)

    return configure


def openid(emulator, user, appid=APPID):
    return emulator.control.users()[user]["openids"][appid]


# -- the algorithm against WeChat's published vectors and wechatpy ------------------------


def test_signature_matches_wechats_sample():
    got = push.signature(SAMPLE_TOKEN, SAMPLE_TIMESTAMP, SAMPLE_NONCE, SAMPLE_ENCRYPT)
    assert got == SAMPLE_MSG_SIGNATURE


def test_decrypts_wechats_sample():
    xml, appid = push.Crypto(AES_KEY).decrypt(SAMPLE_ENCRYPT)
    assert appid == SAMPLE_APPID
    assert fields(xml)["Content"] == "abcdteT"
    assert fields(xml)["MsgId"] == "6054768590064713728"


def test_encrypts_like_wechats_java_sample():
    assert push.Crypto(AES_KEY).encrypt("我是中文abcd123", JAVA_APPID, JAVA_PREFIX) == JAVA_ENCRYPT


def test_padding_is_to_32_bytes_and_key_is_the_iv():
    encrypt = push.Crypto(AES_KEY).encrypt("<xml/>", APPID, b"0" * 16)
    raw = base64.b64decode(encrypt)
    # 16 + 4 + 6 + 18 = 44 bytes of plaintext pad to 64, not to 48 (AES's 16-byte blocks).
    assert len(raw) == 64
    assert push.Crypto(AES_KEY).decrypt(encrypt) == (b"<xml/>", APPID)


wechatpy = pytest.importorskip("wechatpy")
from wechatpy.crypto import WeChatCrypto  # noqa: E402
from wechatpy.exceptions import InvalidAppIdException, InvalidSignatureException  # noqa: E402


@pytest.mark.parametrize("mode", [push.SAFE, push.COMPATIBLE])
def test_wechatpy_decrypts_what_the_emulator_encrypts(mode):
    config = push.Config("http://x/", TOKEN, AES_KEY, mode)
    event = push.event_fields("gh_0123456789ab", "oUser", 1700000000, event="subscribe")
    sent = push.build(config, APPID, event, 1700000000)
    query = dict(p.split("=", 1) for p in sent.query.split("&"))
    plain = WeChatCrypto(TOKEN, AES_KEY, APPID).decrypt_message(
        sent.body, query["msg_signature"], query["timestamp"], query["nonce"]
    )
    assert plain == push.to_xml(event)


def test_emulator_reads_wechatpys_encrypted_reply():
    reply = (
        "<xml><ToUserName><![CDATA[oUser]]></ToUserName><Content><![CDATA[你好]]></Content></xml>"
    )
    envelope = WeChatCrypto(TOKEN, AES_KEY, APPID).encrypt_message(reply, "123456", "1700000000")
    config = push.Config("http://x/", TOKEN, AES_KEY, push.SAFE)
    assert push.read_reply(config, APPID, envelope) == (reply, None)
    # The same envelope for another account is refused.
    assert push.read_reply(config, APPID_2, envelope)[1] == "another AppID in the reply"


# -- delivery to a receiver ---------------------------------------------------------------


def test_follow_pushes_a_plaintext_subscribe(emulator, receiver, configure):
    configure()
    now = emulator.control.clock()["now"]
    answer = emulator.control.set_follows("lisi", [APPID])
    assert [d["event"] for d in answer["pushes"]] == ["subscribe"]
    (got,) = receiver.posts()
    args = got.args
    assert args["signature"] == sha1_sorted(TOKEN, args["timestamp"], args["nonce"])
    assert args["openid"] == openid(emulator, "lisi")
    assert "encrypt_type" not in args and args["nonce"].isdigit()
    body = fields(got.body)
    assert body["ToUserName"] == emulator.control.push_configs()[APPID]["original_id"]
    assert body["ToUserName"].startswith("gh_") and len(body["ToUserName"]) == 15
    assert body["FromUserName"] == openid(emulator, "lisi")
    assert body["MsgType"] == "event" and body["Event"] == "subscribe"
    assert abs(int(body["CreateTime"]) - now) < 5
    assert b"<![CDATA[subscribe]]>" in got.body and b"<CreateTime>" in got.body
    (delivery,) = emulator.control.push_deliveries()
    assert delivery["accepted"] and delivery["attempts"] == 1 and delivery["status"] == 200
    assert delivery["answer"] == "success" and delivery["url"] == receiver.url


def test_unfollow_pushes_unsubscribe_and_nothing_when_nothing_changes(
    emulator, receiver, configure
):
    configure()
    assert emulator.control.set_follows("zhangsan", [APPID])["pushes"] == []
    answer = emulator.control.set_follows("zhangsan", [])
    assert [d["event"] for d in answer["pushes"]] == ["unsubscribe"]
    assert fields(receiver.posts()[-1].body)["Event"] == "unsubscribe"


def test_no_push_when_push_is_off(emulator, receiver):
    assert emulator.control.set_follows("lisi", [APPID])["pushes"] == []
    assert receiver.received == []


def test_safe_mode_sends_only_the_envelope(emulator, receiver, configure):
    configure(push.SAFE)
    emulator.control.push_event("CLICK", user="sunqi", event_key="MENU_1")
    (got,) = receiver.posts()
    args = got.args
    assert args["encrypt_type"] == "aes"
    assert args["signature"] == sha1_sorted(TOKEN, args["timestamp"], args["nonce"])
    body = fields(got.body)
    assert set(body) == {"ToUserName", "Encrypt"}
    assert args["msg_signature"] == sha1_sorted(
        TOKEN, args["timestamp"], args["nonce"], body["Encrypt"]
    )
    plain = WeChatCrypto(TOKEN, AES_KEY, APPID).decrypt_message(
        got.body, args["msg_signature"], args["timestamp"], args["nonce"]
    )
    inner = fields(plain)
    assert inner["Event"] == "CLICK" and inner["EventKey"] == "MENU_1"
    assert inner["FromUserName"] == openid(emulator, "sunqi")


def test_compatible_mode_sends_plaintext_and_encrypt(emulator, receiver, configure):
    configure(push.COMPATIBLE)
    emulator.control.push_event("VIEW", user="sunqi", event_key="https://example.com/a")
    (got,) = receiver.posts()
    body = fields(got.body)
    assert body["Event"] == "VIEW" and body["EventKey"] == "https://example.com/a"
    inner, appid = push.Crypto(AES_KEY).decrypt(body["Encrypt"])
    assert appid == APPID and fields(inner)["Event"] == "VIEW"


def test_text_message_has_a_msgid(emulator, receiver, configure):
    configure()
    delivery = emulator.control.push_text("你好 <b>]]>", user="lisi")
    body = fields(receiver.posts()[0].body)
    assert body["MsgType"] == "text" and body["Content"] == "你好 <b>]]>"
    assert body["MsgId"].isdigit() and len(body["MsgId"]) == 19 and "Event" not in body
    assert delivery["msg_type"] == "text"
    second = fields(emulator.control.push_text("again")["xml"])
    assert second["MsgId"] != body["MsgId"]


def test_retries_a_500_freshly_signed_with_the_same_event(emulator, receiver, configure):
    configure(push.SAFE)
    receiver.answers.extend([Answer("oops", 500), Answer("oops", 502)])
    delivery = emulator.control.push_event("subscribe", user="lisi")
    assert delivery["attempts"] == 3 and delivery["accepted"]
    assert [t["status"] for t in delivery["tries"]] == [500, 502, 200]
    posts = receiver.posts()
    assert len({p.args["nonce"] + p.args["timestamp"] for p in posts}) >= 2  # signed anew
    assert len({p.body for p in posts}) == 3  # encrypted anew
    crypto = push.Crypto(AES_KEY)
    events = [fields(crypto.decrypt(fields(p.body)["Encrypt"])[0]) for p in posts]
    assert len({(e["FromUserName"], e["CreateTime"]) for e in events}) == 1


def test_retries_a_slow_answer(emulator, receiver, configure):
    configure(timeout=0.3)
    receiver.answers.append(Answer(delay=1.0))
    delivery = emulator.control.push_event("SCAN", user="zhangsan", event_key="42", ticket="T")
    assert [t["error"] for t in delivery["tries"]] == ["timeout", None]
    assert delivery["accepted"] and delivery["attempts"] == 2


def test_gives_up_after_three_retries(emulator, receiver, configure):
    configure()
    receiver.default = Answer("down", 503)
    delivery = emulator.control.push_event("subscribe", user="lisi")
    assert delivery["attempts"] == 4 and not delivery["accepted"]
    assert delivery["status"] == 503 and delivery["answer"] == "down"


def test_an_unexpected_answer_is_retried_and_retries_are_configurable(
    emulator, receiver, configure
):
    configure(retries=1)
    receiver.default = Answer("error")
    delivery = emulator.control.push_event("subscribe", user="lisi")
    assert delivery["attempts"] == 2 and not delivery["accepted"]


def test_an_unreachable_url_is_an_error(emulator):
    emulator.control.push_config("http://127.0.0.1:9/push", TOKEN, retries=0, timeout=1)
    delivery = emulator.control.push_event("subscribe", user="lisi")
    assert delivery["status"] is None and delivery["error"] and not delivery["accepted"]


def test_empty_answer_is_accepted(emulator, receiver, configure):
    configure()
    receiver.default = Answer("")
    assert emulator.control.push_event("subscribe", user="lisi")["accepted"]


def test_plaintext_passive_reply_is_recorded(emulator, receiver, configure):
    configure()
    reply = "<xml><ToUserName><![CDATA[o1]]></ToUserName><MsgType><![CDATA[text]]></MsgType></xml>"
    receiver.default = Answer(reply, content_type="application/xml")
    delivery = emulator.control.push_text("hi")
    assert delivery["accepted"] and delivery["reply"] == reply and delivery["reply_error"] is None


def test_safe_mode_reply_is_decrypted(emulator, receiver, configure):
    configure(push.SAFE)
    reply = "<xml><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[收到]]></Content></xml>"
    receiver.default = Answer(WeChatCrypto(TOKEN, AES_KEY, APPID).encrypt_message(reply, "77"))
    delivery = emulator.control.push_text("hi")
    assert delivery["reply"] == reply and delivery["reply_error"] is None


def test_safe_mode_plaintext_reply_is_flagged(emulator, receiver, configure):
    configure(push.SAFE)
    receiver.default = Answer("<xml><Content>x</Content></xml>")
    delivery = emulator.control.push_text("hi")
    assert delivery["accepted"] and delivery["reply_error"] == "plaintext reply in safe mode"


def test_no_wait_answers_202_and_delivers_later(emulator, receiver, configure):
    configure()
    status, _, _ = emulator.control.request(
        "POST",
        "/_emu/push/event",
        b'{"appid": "%s", "user": "lisi", "event": "subscribe", "wait": false}' % APPID.encode(),
        {"Content-Type": "application/json"},
    )
    assert status == 202
    deadline = time.monotonic() + 10
    while emulator.control.push_deliveries()[-1]["state"] != "done":
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert emulator.control.push_deliveries()[-1]["accepted"]


def test_subscribe_event_makes_a_follower(emulator, receiver, configure):
    configure()
    emulator.control.push_event("subscribe", user="lisi")
    assert APPID in emulator.control.users()["lisi"]["follows"]
    emulator.control.push_event("unsubscribe", user="lisi")
    assert APPID not in emulator.control.users()["lisi"]["follows"]


# -- replay and tampering -----------------------------------------------------------------


def test_replay_sends_the_same_bytes(emulator, receiver, configure):
    configure(push.SAFE)
    first = emulator.control.push_text("once")
    again = emulator.control.push_replay()
    assert again["replay_of"] == first["id"] and again["kind"] == "replay"
    one, two = receiver.posts()
    assert (one.query, one.body) == (two.query, two.body)
    assert emulator.control.push_replay(first["id"])["replay_of"] == first["id"]


def test_replay_is_not_retried(emulator, receiver, configure):
    configure()
    emulator.control.push_text("once")
    receiver.default = Answer("no", 403)
    assert emulator.control.push_replay()["attempts"] == 1


def _sent(emulator, receiver, configure, tamper, mode=push.SAFE, **kwargs):
    configure(mode)
    receiver.default = Answer("refused", 403)
    delivery = emulator.control.push_event("subscribe", user="lisi", tamper=tamper, **kwargs)
    assert delivery["attempts"] == 1 and delivery["tamper"] == tamper  # an attacker, no retries
    (got,) = receiver.posts()
    return got, delivery


def test_tamper_bad_signature(emulator, receiver, configure):
    got, _ = _sent(emulator, receiver, configure, "bad_signature", push.PLAINTEXT)
    args = got.args
    assert len(args["signature"]) == 40
    assert args["signature"] != sha1_sorted(TOKEN, args["timestamp"], args["nonce"])


def test_tamper_bad_msg_signature(emulator, receiver, configure):
    got, _ = _sent(emulator, receiver, configure, "bad_msg_signature")
    args, encrypt = got.args, fields(got.body)["Encrypt"]
    assert args["signature"] == sha1_sorted(TOKEN, args["timestamp"], args["nonce"])
    assert args["msg_signature"] != sha1_sorted(TOKEN, args["timestamp"], args["nonce"], encrypt)
    with pytest.raises(InvalidSignatureException):
        WeChatCrypto(TOKEN, AES_KEY, APPID).decrypt_message(
            got.body, args["msg_signature"], args["timestamp"], args["nonce"]
        )


def test_tamper_flipped_ciphertext_is_signed_but_undecryptable(emulator, receiver, configure):
    got, _ = _sent(emulator, receiver, configure, "flipped_ciphertext")
    args, encrypt = got.args, fields(got.body)["Encrypt"]
    assert args["msg_signature"] == sha1_sorted(TOKEN, args["timestamp"], args["nonce"], encrypt)
    with pytest.raises(ValueError, match="padding"):
        push.Crypto(AES_KEY).decrypt(encrypt)


def test_tamper_wrong_appid(emulator, receiver, configure):
    got, _ = _sent(emulator, receiver, configure, "wrong_appid")
    args = got.args
    with pytest.raises(InvalidAppIdException):
        WeChatCrypto(TOKEN, AES_KEY, APPID).decrypt_message(
            got.body, args["msg_signature"], args["timestamp"], args["nonce"]
        )
    assert push.Crypto(AES_KEY).decrypt(fields(got.body)["Encrypt"])[1] == APPID_2


def test_tamper_stale_timestamp(emulator, receiver, configure):
    now = emulator.control.clock()["now"]
    got, delivery = _sent(emulator, receiver, configure, "stale_timestamp", push.PLAINTEXT, age=900)
    args = got.args
    assert abs(int(args["timestamp"]) - (now - 900)) < 5
    assert args["signature"] == sha1_sorted(TOKEN, args["timestamp"], args["nonce"])
    assert fields(got.body)["CreateTime"] == args["timestamp"]


@pytest.mark.parametrize("mode", [push.PLAINTEXT, push.SAFE])
def test_tamper_oversized(emulator, receiver, configure, mode):
    got, _ = _sent(emulator, receiver, configure, "oversized", mode, size=100_000)
    assert len(got.body) > 100_000
    assert fields(got.body)  # still well-formed XML


@pytest.mark.parametrize("tamper, marker", [("dtd", b"<!ENTITY b"), ("xxe", b"SYSTEM")])
@pytest.mark.parametrize("mode", push.MODES)
def test_tamper_doctype(emulator, receiver, configure, tamper, marker, mode):
    got, _ = _sent(emulator, receiver, configure, tamper, mode)
    assert got.body.startswith(b'<?xml version="1.0"?><!DOCTYPE xml [') and marker in got.body
    args = got.args
    assert args["signature"] == sha1_sorted(TOKEN, args["timestamp"], args["nonce"])


def test_aes_tampers_need_aes(emulator, receiver, configure):
    configure()
    status, _, body = emulator.control.request(
        "POST",
        "/_emu/push/event",
        b'{"appid": "%s", "user": "lisi", "event": "subscribe", "tamper": "wrong_appid"}'
        % APPID.encode(),
        {"Content-Type": "application/json"},
    )
    assert status == 400 and b"compatible or safe" in body


# -- URL verification ---------------------------------------------------------------------


def test_url_check_echoes(emulator, receiver, configure):
    configure(push.SAFE)
    result = emulator.control.push_verify(echostr="4242")
    assert result["ok"] and result["status"] == 200 and result["answer"] == "4242"
    (got,) = receiver.received
    args = got.args
    assert got.method == "GET" and args["echostr"] == "4242"
    assert args["signature"] == sha1_sorted(TOKEN, args["timestamp"], args["nonce"])
    assert "msg_signature" not in args


def test_url_check_reports_a_site_that_does_not_echo(emulator, receiver, configure):
    configure()
    receiver.echo = False
    receiver.default = Answer("forbidden", 403)
    result = emulator.control.push_verify(tamper="bad_signature")
    assert not result["ok"] and result["status"] == 403
    args = receiver.received[0].args
    assert args["signature"] != sha1_sorted(TOKEN, args["timestamp"], args["nonce"])


# -- configuration ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        {"url": "ftp://x/", "token": TOKEN},
        {"url": "http://x/push?a=1", "token": TOKEN},
        {"url": "http://x/", "token": "a!"},
        {"url": "http://x/", "token": TOKEN, "mode": "safe"},
        {"url": "http://x/", "token": TOKEN, "aes_key": "short", "mode": "compatible"},
        {"url": "http://x/", "token": TOKEN, "mode": "loud"},
        {"url": "http://x/", "token": TOKEN, "retries": -1},
        {"url": "http://x/", "token": TOKEN, "timeout": "5"},
        {"appid": "wx0000000000000bad", "url": "http://x/", "token": TOKEN},
    ],
)
def test_bad_config_is_refused(emulator, body):
    payload = {"appid": APPID, **body}
    status, _, _ = emulator.control.request(
        "POST",
        "/_emu/push/config",
        json.dumps(payload).encode(),
        {"Content-Type": "application/json"},
    )
    assert status == 400


def test_config_shows_and_switches_off(emulator, receiver):
    shown = emulator.control.push_config(receiver.url, TOKEN, AES_KEY)
    assert shown["mode"] == "safe" and shown["retries"] == 3 and shown["timeout"] == 5.0
    assert emulator.control.push_config(None, None)["url"] is None
    assert emulator.control.push_configs()[APPID]["url"] is None


def test_event_needs_push_configured(emulator):
    status, _, body = emulator.control.request(
        "POST",
        "/_emu/push/event",
        b'{"appid": "%s", "user": "lisi", "event": "subscribe"}' % APPID.encode(),
        {"Content-Type": "application/json"},
    )
    assert status == 400 and b"not configured" in body


def test_settings_configure_push_and_reset_restores_them(make_emulator, receiver):
    settings = {
        APPID: {"url": receiver.url, "token": TOKEN, "aes_key": AES_KEY, "mode": "compatible"}
    }
    emu = make_emulator(
        EMU_PUSH=settings, EMU_PUSH_RETRIES=0, EMU_ORIGINAL_IDS={APPID: "gh_aaaaaaaaaaaa"}
    )
    shown = emu.control.push_configs()[APPID]
    assert shown["mode"] == "compatible" and shown["retries"] == 0
    assert shown["original_id"] == "gh_aaaaaaaaaaaa"
    emu.control.push_config(None, None)
    emu.control.reset()
    assert emu.control.push_configs()[APPID]["url"] == receiver.url
    receiver.default = Answer("x", 500)
    assert emu.control.push_event("subscribe", user="lisi")["attempts"] == 1


def test_bad_settings_stop_the_emulator():
    from wxsite.emulator import create_emulator

    with pytest.raises(ValueError, match="EMU_PUSH"):
        create_emulator({"EMU_PUSH": {APPID: {"url": "nope", "token": TOKEN}}})


def test_reset_forgets_deliveries(emulator, receiver, configure):
    configure()
    emulator.control.push_text("x")
    emulator.control.reset()
    assert emulator.control.push_deliveries() == []
    assert emulator.control.push_configs()[APPID]["url"] is None
