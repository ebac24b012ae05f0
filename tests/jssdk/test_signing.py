"""Signed configs verified by the emulator exactly as WeChat would (SPEC §4, RELIABILITY 49–52)."""

import json
import re
from urllib.parse import quote

import pytest
import requests

from support import DESKTOP_UA, WECHAT_UA, LiveServer, WeChat, site_config, wechat_login
from wxsite import create_app, store
from wxsite.wechat import jssdk, protocol


def embedded_config(html):
    match = re.search(r'<script type="application/json" id="wx-config">(.*?)</script>', html, re.S)
    assert match, "page has no #wx-config"
    return json.loads(match.group(1))


def verify(emu, config, url):
    body = {**config, "url": url.split("#")[0]}
    return (
        emu.http_verify(body)
        if hasattr(emu, "http_verify")
        else requests.post(emu.base_url + "/_emu/jssdk/verify", json=body).json()
    )


def test_official_example_through_the_emulator_check():
    ticket = (
        "sM4AOVdWfPE4DxkXGEs8VMCPGGVi4C3VM0P37wVUCFvkVAy_90u5h9nbSlYy3-Sl-HhTdfl2fzFy1AOcHKP7qg"
    )
    assert jssdk.signature(
        ticket, "Wm3WZYTPz0wzccnW", 1414587457, "http://mp.weixin.qq.com?params=value"
    ) == ("0f9de62fce790f9a083d5c99e95740ceb90c27ed")


@pytest.mark.parametrize(
    "path",
    [
        "/share",
        "/share?a=b&c=d",
        "/share?q=%E4%B8%AD%E6%96%87&a=b%20c+d",
        "/share?x=%2Fy%3Fz",
        "/share?empty=",
    ],
)
def test_share_page_signature_verifies(logged_in, live, emu, path):
    response = logged_in.get(live.url(path))
    assert response.status_code == 200
    config = embedded_config(response.text)
    assert config["jsApiList"] == ["updateAppMessageShareData", "updateTimelineShareData"]
    assert verify(emu, config, live.url(path)) == {"ok": True}
    assert verify(emu, config, live.url("/share?other=1")) != {"ok": True}


def test_non_ascii_query_as_the_browser_sends_it(logged_in, live, emu):
    # requests percent-encodes 中文 like a browser does; location.href shows it encoded.
    response = logged_in.get(live.url("/share?q=中文"))
    config = embedded_config(response.text)
    assert verify(emu, config, live.url("/share?q=" + quote("中文")))["ok"]


def test_fragment_is_not_signed(logged_in, live, emu):
    response = logged_in.get(live.url("/share#/route"))
    assert verify(emu, embedded_config(response.text), live.url("/share#/route"))["ok"]


def test_each_render_has_a_fresh_nonce_and_no_wechat_call(logged_in, live, emu):
    first = embedded_config(logged_in.get(live.url("/share")).text)
    calls = emu.counters()
    second = embedded_config(logged_in.get(live.url("/share")).text)
    assert first["nonceStr"] != second["nonceStr"]
    assert emu.counters() == calls  # ticket from memory: zero WeChat calls
    assert calls[protocol.TICKET] == 1


@pytest.mark.sqlite_only
def test_signed_render_writes_nothing(logged_in, live, app, monkeypatch):
    logged_in.get(live.url("/share"))  # first render may create the referral code
    from wxsite import store

    statements = []
    engine = store.engine(app)
    original = engine.connect

    def traced():
        db = original()
        db.native.conn.set_trace_callback(statements.append)
        return db

    monkeypatch.setattr(engine, "connect", traced)
    assert logged_in.get(live.url("/share")).status_code == 200
    writes = [
        s for s in statements if re.match(r"\s*(INSERT|UPDATE|DELETE|BEGIN IMMEDIATE)", s, re.I)
    ]
    assert statements and writes == []


@pytest.fixture
def proxied(tmp_path, emu):
    app = create_app(site_config(tmp_path, emu, WX_PROXY_HOPS=1))
    server = LiveServer(app)
    yield server
    server.shutdown()


def test_behind_one_proxy_signs_the_public_url(proxied, phone, emu):
    wechat_login(phone, proxied)
    headers = {
        "X-Forwarded-Proto": "https",
        "X-Forwarded-Host": "wx.example.com",
        "X-Forwarded-Port": "8443",
        "X-Forwarded-For": "1.2.3.4",
    }
    response = phone.get(proxied.url("/share?a=1"), headers=headers)
    config = embedded_config(response.text)
    assert verify(emu, config, "https://wx.example.com:8443/share?a=1")["ok"]
    # The https answer made the session cookie Secure; this plain-http test client must log in again.
    wechat_login(phone, proxied)
    default_port = phone.get(
        proxied.url("/share?a=1"), headers={**headers, "X-Forwarded-Port": "443"}
    )
    assert verify(emu, embedded_config(default_port.text), "https://wx.example.com/share?a=1")["ok"]
    assert "https://wx.example.com/?ref=" in default_port.text  # share link on the public host


def test_forwarded_headers_ignored_without_trusted_hops(logged_in, live, emu):
    response = logged_in.get(
        live.url("/share"), headers={"X-Forwarded-Host": "evil.com", "X-Forwarded-Proto": "https"}
    )
    config = embedded_config(response.text)
    assert verify(emu, config, live.url("/share"))["ok"]
    assert "evil.com" not in response.text


def test_jssdk_config_endpoint_signs_only_this_site(logged_in, live, emu):
    ok = logged_in.get(live.url("/jssdk/config"), params={"url": live.url("/share?x=1#frag")})
    assert ok.status_code == 200
    assert verify(emu, ok.json(), live.url("/share?x=1"))["ok"]
    port = live.base_url.rsplit(":", 1)[1]
    for foreign in [
        "https://evil.com/",
        f"http://127.0.0.2:{port}/",
        f"https://127.0.0.1:{port}/",
        "http://127.0.0.1:1/",
        f"http://user@127.0.0.1:{port}/",
        "/relative",
        "javascript:alert(1)",
    ]:
        refused = logged_in.get(live.url("/jssdk/config"), params={"url": foreign})
        assert refused.status_code == 400, foreign
        assert refused.json()["error"] == "foreign_url"
    unknown = logged_in.get(
        live.url("/jssdk/config"), params={"url": live.url("/"), "apis": "getLocation"}
    )
    assert unknown.status_code == 400


def test_ticket_failure_is_a_clear_503(logged_in, live, emu):
    emu.fault(protocol.TICKET, errcode=protocol.API_UNAUTHORIZED, count=-1)
    response = logged_in.get(live.url("/share"))
    assert response.status_code == 503 and "服务配置错误" in response.text


def test_referral_visits_are_counted_once_per_visitor_not_for_the_sharer(logged_in, live, emu):
    page = logged_in.get(live.url("/share")).text
    link = re.search(r'"link": "([^"]+)"', page).group(1)
    assert link.startswith(live.url("/?ref="))
    logged_in.get(link)  # the sharer's own click
    ref_path = link[len(live.base_url) :]
    for user in ("lisi", "wangwu"):
        visitor = WeChat(live)
        # In WeChat an anonymous visitor goes through silent authorization and comes back.
        assert "/connect/oauth2/authorize" in visitor.get(ref_path).url
        visitor.login(user=user, next=ref_path)
        visitor.get(ref_path)
    assert re.search(r'id="share-visits">2 人', logged_in.get(live.url("/share")).text)


def test_anonymous_requests_cannot_inflate_a_share_count(logged_in, live, emu, app):
    page = logged_in.get(live.url("/share")).text
    link = re.search(r'"link": "([^"]+)"', page).group(1)
    for _ in range(30):  # cookieless, outside WeChat: nothing to count, nothing written
        requests.get(link, headers={"User-Agent": DESKTOP_UA}, allow_redirects=False)
    for _ in range(30):  # cookieless, in WeChat: sent to authorize, nothing written
        answer = requests.get(link, headers={"User-Agent": WECHAT_UA}, allow_redirects=False)
        assert answer.status_code == 302
    with app.app_context():
        db = store.get_db()
        assert db.scalar("SELECT COUNT(*) FROM share_visits") == 0
