"""``/wechat/push`` end to end, with pushes signed and encrypted by wechatpy (not our code).

Plaintext, compatible and safe mode; follow state on /me kept by the pushes; a delivery
applied once however often WeChat retries it; tampered, stale, foreign and hostile pushes
refused with nothing applied.
"""

import hashlib
import re
import time

import pytest
from wechatpy.crypto import WeChatCrypto

from support import site_config
from wxsite import create_app, store
from wxsite.wechat import protocol

TOKEN = "wxsitepushtoken"
AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
APPID = protocol.EMULATOR_APPID


def signature(*parts):
    return hashlib.sha1("".join(sorted(parts)).encode()).hexdigest()


def event_xml(openid, event, create_time, key=""):
    return (
        f"<xml><ToUserName><![CDATA[gh_0123456789ab]]></ToUserName>"
        f"<FromUserName><![CDATA[{openid}]]></FromUserName><CreateTime>{create_time}</CreateTime>"
        f"<MsgType><![CDATA[event]]></MsgType><Event><![CDATA[{event}]]></Event>"
        f"<EventKey><![CDATA[{key}]]></EventKey></xml>"
    )


def text_xml(openid, content, msg_id):
    return (
        f"<xml><ToUserName><![CDATA[gh_0123456789ab]]></ToUserName>"
        f"<FromUserName><![CDATA[{openid}]]></FromUserName><CreateTime>{int(time.time())}"
        f"</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[{content}]]>"
        f"</Content><MsgId>{msg_id}</MsgId></xml>"
    )


class Pusher:
    """WeChat's side of a push, in one of the three modes."""

    def __init__(self, client, mode, appid=APPID, token=TOKEN):
        self.client, self.mode, self.token = client, mode, token
        self.crypto = WeChatCrypto(token, AES_KEY, appid)

    def post(self, xml, timestamp=None, tamper=None):
        timestamp = str(timestamp or int(time.time()))
        nonce = "1320562132"
        query = {"timestamp": timestamp, "nonce": nonce}
        query["signature"] = signature(self.token, timestamp, nonce)
        body = xml
        if self.mode != "plaintext":
            sealed = self.crypto.encrypt_message(xml, nonce, timestamp)
            encrypt = re.search(r"<Encrypt><!\[CDATA\[(.*?)\]\]>", sealed).group(1)
            if tamper == "ciphertext":
                encrypt = ("A" if encrypt[0] != "A" else "B") + encrypt[1:]
            query["msg_signature"] = signature(self.token, timestamp, nonce, encrypt)
            query["encrypt_type"] = "aes"
            inner = f"<Encrypt><![CDATA[{encrypt}]]></Encrypt>"
            # Compatible mode sends the plaintext fields beside the ciphertext.
            body = (
                xml.replace("</xml>", inner + "</xml>")
                if self.mode == "compatible"
                else (f"<xml><ToUserName><![CDATA[gh_0123456789ab]]></ToUserName>{inner}</xml>")
            )
        if tamper == "signature":
            query["signature"] = "0" * 40
        return self.client.post("/wechat/push", query_string=query, data=body.encode())


@pytest.fixture
def site(push_app):
    return push_app(TOKEN, AES_KEY, "谢谢留言 ]]> <b>")


@pytest.fixture
def pusher(site, mode):
    return Pusher(site.test_client(), mode)


def follows(site, openid):
    with site.app_context():
        return store.get_follow(store.get_db(), APPID, openid)


def deliveries(site):
    with site.app_context():
        return store.get_db().scalar("SELECT COUNT(*) FROM deliveries")


def test_url_verification_echoes_only_a_correct_signature(site):
    client = site.test_client()
    now = str(int(time.time()))
    good = {"timestamp": now, "nonce": "42", "echostr": "8236372049", "signature": ""}
    good["signature"] = signature(TOKEN, now, "42")
    answer = client.get("/wechat/push", query_string=good)
    assert answer.status_code == 200 and answer.text == "8236372049"
    forged = client.get("/wechat/push", query_string={**good, "signature": "f" * 40})
    assert forged.status_code == 403 and "8236372049" not in forged.text


def test_subscribe_and_unsubscribe_keep_follow_state(site, pusher):
    now = int(time.time())
    answer = pusher.post(event_xml("o-fan", "subscribe", now))
    assert answer.status_code == 200 and answer.text == "success"
    assert follows(site, "o-fan") is True
    assert pusher.post(event_xml("o-fan", "unsubscribe", now + 5)).text == "success"
    assert follows(site, "o-fan") is False


def test_a_retried_delivery_is_applied_once_and_old_news_changes_nothing(site, pusher):
    now = int(time.time())
    unsubscribe = event_xml("o-fan", "unsubscribe", now)
    for _ in range(3):  # WeChat retries three times
        assert pusher.post(unsubscribe).text == "success"
    assert deliveries(site) == 1
    # An older subscribe arriving late (out of order) does not undo the newer unsubscribe.
    assert pusher.post(event_xml("o-fan", "subscribe", now - 60)).text == "success"
    assert follows(site, "o-fan") is False


def test_text_message_gets_the_configured_passive_reply(site, pusher, mode):
    answer = pusher.post(text_xml("o-fan", "你好", "1234567890123456"))
    assert answer.status_code == 200
    body = answer.text
    if mode != "plaintext":
        found = {
            k: re.search(rf"<{k}>(?:<!\[CDATA\[)?(.*?)(?:\]\]>)?</{k}>", body).group(1)
            for k in ("MsgSignature", "TimeStamp", "Nonce")
        }
        body = pusher.crypto.decrypt_message(
            body, found["MsgSignature"], found["TimeStamp"], found["Nonce"]
        )
        body = body.decode() if isinstance(body, bytes) else body
    assert "<ToUserName><![CDATA[o-fan]]></ToUserName>" in body
    content = re.search(r"<Content>(.*)</Content>", body, re.S).group(1)
    assert content.replace("]]]]><![CDATA[>", "]]>") == "<![CDATA[谢谢留言 ]]> <b>]]>"


@pytest.mark.parametrize("tamper", ["signature", "ciphertext"])
def test_tampered_pushes_are_refused_and_change_nothing(site, pusher, mode, tamper):
    if tamper == "ciphertext" and mode == "plaintext":
        pytest.skip("no ciphertext in plaintext mode")
    answer = pusher.post(event_xml("o-fan", "subscribe", int(time.time())), tamper=tamper)
    assert 400 <= answer.status_code < 500 and "success" not in answer.text
    assert follows(site, "o-fan") is None and deliveries(site) == 0


def test_stale_and_foreign_pushes_are_refused(site, mode):
    client = site.test_client()
    stale = Pusher(client, mode).post(event_xml("o-fan", "subscribe", 1), timestamp=1_000_000)
    assert stale.status_code == 403
    if mode != "plaintext":
        other = Pusher(client, mode, appid=protocol.EMULATOR_APPID_2)
        assert other.post(event_xml("o-fan", "subscribe", int(time.time()))).status_code == 403
    assert deliveries(site) == 0


BOMB = (
    '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
    '<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>'
    "<xml><ToUserName>&lol2;</ToUserName></xml>"
)


@pytest.mark.parametrize(
    "body, status",
    [(BOMB, 400), ("<xml><a>" + "x" * 70_000 + "</a></xml>", 413), ("not xml", 400)],
    ids=["entities", "oversized", "garbage"],
)
def test_hostile_bodies_are_refused(tmp_path, emu, body, status):
    site = create_app(site_config(tmp_path, emu, WX_PUSH_TOKEN=TOKEN))
    now = str(int(time.time()))
    query = {"timestamp": now, "nonce": "1", "signature": signature(TOKEN, now, "1")}
    answer = site.test_client().post("/wechat/push", query_string=query, data=body.encode())
    assert answer.status_code == status and answer.content_type.startswith("text/plain")
    assert "<html" not in answer.text


def test_push_is_off_without_a_token(client):
    assert client.post("/wechat/push", data=b"<xml/>").status_code == 404


def test_me_shows_follow_state_from_pushes_without_asking_wechat(tmp_path, emu, phone):
    from support import LiveServer, wechat_login

    site = create_app(site_config(tmp_path, emu, WX_PUSH_TOKEN=TOKEN))
    live = LiveServer(site)
    try:
        wechat_login(phone, live, user="lisi", scope="snsapi_userinfo", next="/me")
        openid = emu.users()["lisi"]["openids"][APPID]
        pusher = Pusher(site.test_client(), "plaintext")
        assert pusher.post(event_xml(openid, "subscribe", int(time.time()))).text == "success"
        before = emu.count(protocol.USER_INFO)
        assert "已关注" in phone.get(live.url("/me")).text
        pusher.post(event_xml(openid, "unsubscribe", int(time.time()) + 1))
        assert "未关注" in phone.get(live.url("/me")).text
        assert emu.count(protocol.USER_INFO) == before  # no WeChat call per view
    finally:
        live.shutdown()


def test_a_push_that_fails_midway_is_applied_by_the_retry(site, pusher, monkeypatch):
    from wxsite.inbound import events

    real = events.apply

    def apply_then_fail(db, appid, event):
        real(db, appid, event)
        raise RuntimeError("killed after applying")

    subscribe = event_xml("o-fan", "subscribe", int(time.time()))
    monkeypatch.setattr(events, "apply", apply_then_fail)
    failed = pusher.post(subscribe)
    assert failed.status_code == 500 and failed.text == ""  # WeChat retries a 5xx
    assert "text/plain" in failed.content_type
    assert deliveries(site) == 0 and follows(site, "o-fan") is None  # neither half kept
    monkeypatch.setattr(events, "apply", real)
    assert pusher.post(subscribe).text == "success"
    assert deliveries(site) == 1 and follows(site, "o-fan") is True


@pytest.mark.parametrize("fault", [store.Busy, store.Unavailable])
def test_a_database_fault_answers_wechat_in_its_shape(site, pusher, monkeypatch, fault):
    def down(*args, **kwargs):
        raise fault("database is locked")

    monkeypatch.setattr(store, "record_delivery", down)
    answer = pusher.post(event_xml("o-fan", "subscribe", int(time.time())))
    assert answer.status_code == 503 and answer.text == "" and "<html" not in answer.text
    assert "text/plain" in answer.content_type
    pay = site.test_client().post("/pay/notify", data=b"{}")
    assert "<html" not in pay.text and pay.is_json, pay.text[:200]


def test_a_wrong_method_is_answered_in_wechats_shape(site):
    client = site.test_client()
    push = client.put("/wechat/push")
    assert push.status_code == 405 and push.text == "" and "text/plain" in push.content_type
    assert "GET" in push.headers["Allow"]
    pay = client.get("/pay/notify")
    assert pay.status_code == 405 and pay.json["code"] == "FAIL"


def test_a_refused_push_logs_one_line_without_its_payload(site, pusher, caplog, mode):
    marker = "o-secret-payload-marker"
    with caplog.at_level("INFO"):
        answer = pusher.post(event_xml(marker, "subscribe", int(time.time())), tamper="signature")
    assert answer.status_code == 403
    refused = [r for r in caplog.records if r.getMessage().startswith("push refused")]
    assert len(refused) == 1 and marker not in caplog.text


def test_menu_clicks_and_views_are_logged(site, pusher, caplog):
    with caplog.at_level("INFO", logger="wxsite.inbound"):
        now = int(time.time())
        assert pusher.post(event_xml("o-fan", "CLICK", now, key="MENU_NEWS")).text == "success"
        assert pusher.post(event_xml("o-fan", "VIEW", now + 1, key="https://x/")).text == "success"
    words = caplog.text
    assert "CLICK" in words and "VIEW" in words and deliveries(site) == 2
