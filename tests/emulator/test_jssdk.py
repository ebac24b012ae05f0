"""The fake JS-SDK's server side: its script, wx.config signature checks."""

import hashlib

import pytest

from wxsite.wechat import protocol

from .conftest import APPID, APPID_2, SECRET_2

# SPEC §4: WeChat's official worked example.
EXAMPLE_TICKET = (
    "sM4AOVdWfPE4DxkXGEs8VMCPGGVi4C3VM0P37wVUCFvkVAy_90u5h9nbSlYy3-Sl-HhTdfl2fzFy1AOcHKP7qg"
)
EXAMPLE = {
    "appId": APPID,
    "timestamp": "1414587457",
    "nonceStr": "Wm3WZYTPz0wzccnW",
    "signature": "0f9de62fce790f9a083d5c99e95740ceb90c27ed",
    "url": "http://mp.weixin.qq.com?params=value",
    "jsApiList": ["chooseImage"],
}
PAGE = "http://127.0.0.1:5000/share?x=1&y=%E4%B8%AD"


def sign(ticket, noncestr, timestamp, url):
    plain = f"jsapi_ticket={ticket}&noncestr={noncestr}&timestamp={timestamp}&url={url}"
    return hashlib.sha1(plain.encode()).hexdigest()


def ticket_for(emu, appid=APPID, secret=None):
    token = emu.token(appid, secret or protocol.EMULATOR_ACCOUNTS[appid])
    return emu.get(protocol.TICKET, params={"access_token": token, "type": "jsapi"}).json()


def verify(emu, **config):
    return emu.post("/_emu/jssdk/verify", json=config).json()


def signed_config(ticket, url=PAGE, appid=APPID):
    return {
        "appId": appid,
        "timestamp": 1700000000,
        "nonceStr": "abc123",
        "signature": sign(ticket, "abc123", 1700000000, url),
        "url": url,
        "jsApiList": ["updateAppMessageShareData"],
    }


def test_official_example_verifies_with_a_fixed_ticket(make_emulator):
    emu = make_emulator(EMU_FIXED_TICKET=EXAMPLE_TICKET)
    assert verify(emu, **EXAMPLE) == {"ok": False, "errMsg": "config:invalid signature"}
    assert ticket_for(emu)["ticket"] == EXAMPLE_TICKET
    assert verify(emu, **EXAMPLE) == {"ok": True}
    # Numbers are signed as their decimal text, as the page's JavaScript would send them.
    assert verify(emu, **dict(EXAMPLE, timestamp=1414587457)) == {"ok": True}


@pytest.mark.parametrize(
    "change",
    [
        {"signature": "0" * 40},
        {"nonceStr": "Wm3WZYTPz0wzccnX"},
        {"timestamp": "1414587458"},
        {"url": "http://mp.weixin.qq.com?params=value#frag"},
        {"url": "http://mp.weixin.qq.com/?params=value"},
        {"url": "http://mp.weixin.qq.com?params%3Dvalue"},
        {"appId": APPID_2},
    ],
)
def test_anything_changed_breaks_the_signature(make_emulator, change):
    emu = make_emulator(EMU_FIXED_TICKET=EXAMPLE_TICKET)
    ticket_for(emu)
    assert verify(emu, **dict(EXAMPLE, **change)) == {
        "ok": False,
        "errMsg": "config:invalid signature",
    }


def test_signature_with_the_current_ticket(emulator):
    ticket = ticket_for(emulator)["ticket"]
    assert verify(emulator, **signed_config(ticket)) == {"ok": True}
    assert verify(emulator, **signed_config(ticket, appid=APPID_2))["ok"] is False


def test_verify_never_reveals_the_ticket(emulator):
    ticket = ticket_for(emulator)["ticket"]
    r = emulator.post("/_emu/jssdk/verify", json=signed_config("wrong"))
    assert ticket not in r.text


def test_old_ticket_verifies_only_for_the_grace(emulator):
    old = ticket_for(emulator)["ticket"]
    new = ticket_for(emulator)["ticket"]
    assert verify(emulator, **signed_config(old))["ok"] is True
    emulator.control.advance(protocol.CLASSIC_TOKEN_GRACE + 1)
    assert verify(emulator, **signed_config(old))["ok"] is False
    assert verify(emulator, **signed_config(new))["ok"] is True


def test_ticket_expires(emulator):
    ticket = ticket_for(emulator)["ticket"]
    emulator.control.advance(protocol.TICKET_LIFETIME + 1)
    assert verify(emulator, **signed_config(ticket))["ok"] is False


def test_tickets_are_per_appid(emulator):
    ticket = ticket_for(emulator, APPID_2, SECRET_2)["ticket"]
    assert verify(emulator, **signed_config(ticket, appid=APPID_2))["ok"] is True
    assert verify(emulator, **signed_config(ticket, appid=APPID))["ok"] is False


def test_js_domains(make_emulator):
    emu = make_emulator(EMU_JS_DOMAINS=["127.0.0.1"])
    ticket = ticket_for(emu)["ticket"]
    assert verify(emu, **signed_config(ticket)) == {"ok": True}
    elsewhere = "http://site.example/share"
    assert verify(emu, **signed_config(ticket, url=elsewhere)) == {
        "ok": False,
        "errMsg": "config:invalid url domain",
    }


def test_verify_accepts_text_plain_bodies(emulator):
    import json

    ticket = ticket_for(emulator)["ticket"]
    r = emulator.post(
        "/_emu/jssdk/verify",
        data=json.dumps(signed_config(ticket)),
        headers={"Content-Type": "text/plain;charset=UTF-8", "Origin": "http://127.0.0.1:5000"},
    )
    assert r.json() == {"ok": True}
    assert r.headers["Access-Control-Allow-Origin"] == "*"


def test_garbage_verify_request_is_refused_not_crashed(emulator):
    r = emulator.post("/_emu/jssdk/verify", data=b"\xff not json")
    assert r.status_code == 200 and r.json()["ok"] is False


def test_script_is_served_with_cors(emulator):
    r = emulator.get(protocol.EMULATOR_JSSDK_PATH)
    assert r.status_code == 200
    assert "javascript" in r.headers["Content-Type"]
    assert r.headers["Access-Control-Allow-Origin"] == "*"
    assert r.headers["Cross-Origin-Resource-Policy"] == "cross-origin"
    js = r.text
    for api in [
        "config",
        "ready",
        "error",
        "checkJsApi",
        "updateAppMessageShareData",
        "updateTimelineShareData",
        "onMenuShareAppMessage",
        "onMenuShareTimeline",
        "chooseImage",
        "previewImage",
        "uploadImage",
        "downloadImage",
        "getLocalImgData",
        "startRecord",
        "stopRecord",
        "onVoiceRecordEnd",
        "playVoice",
        "pauseVoice",
        "stopVoice",
        "onVoicePlayEnd",
        "uploadVoice",
        "downloadVoice",
        "closeWindow",
        "hideMenuItems",
        "showMenuItems",
    ]:
        assert api in js, api
    assert "window.jWeixin" in js and "__wxemu" in js
    # Strict-CSP friendly: no inline style attributes, no innerHTML, no <style>.
    assert "innerHTML" not in js and "setAttribute('style'" not in js and "<style" not in js
