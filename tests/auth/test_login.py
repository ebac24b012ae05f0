"""Web authorization through the real emulator over HTTP (RELIABILITY items 1–17)."""

import json
import re
import threading
import time
from functools import partial
from urllib.parse import parse_qs, quote, urlsplit

import pytest
import requests

from support import (
    DESKTOP_UA,
    WECHAT_UA,
    authorize_link,
    callback_url,
    consent,
    csrf_token,
    in_parallel,
    phone_session,
    wechat_login,
)
from wxsite import store, wx
from wxsite.auth import oauth
from wxsite.wechat import protocol

APPID = protocol.EMULATOR_APPID


def test_authorize_link_is_exactly_what_wechat_matches(phone, live, emu):
    link = authorize_link(phone, live, next="/me")
    base, fragment = link.split("#")
    assert fragment == "wechat_redirect"
    query = urlsplit(base).query
    keys = [pair.split("=")[0] for pair in query.split("&")]
    assert keys == ["appid", "redirect_uri", "response_type", "scope", "state", "connect_redirect"]
    assert f"redirect_uri={quote(live.url('/auth/callback'), safe='')}&" in query
    state = parse_qs(query)["state"][0]
    assert re.fullmatch(r"[A-Za-z0-9]{1,128}", state)
    assert "next" not in query and "/me" not in query  # next stays server-side


def here(response):
    """Return where the phone ended (requests carries #wechat_redirect along redirects)."""
    return response.url.split("#")[0]


def is_logged_in(phone, live):
    return phone.get(live.url("/auth/bind"), allow_redirects=False).status_code == 200


def test_authlib_keeps_the_state_server_side_and_a_marker_in_the_session(app, phone, live, emu):
    link = authorize_link(phone, live, next="/me", scope="snsapi_userinfo")
    state = parse_qs(urlsplit(link.split("#")[0]).query)["state"][0]
    with app.app_context():
        row = store.get_auth_state(store.get_db(), oauth.state_key(state))
    data = json.loads(row["value"])["data"]
    assert data == {
        "redirect_uri": live.url("/auth/callback"),
        "next": "/me",
        "scope": "snsapi_userinfo",
    }
    assert row["expires_at"] - time.time() == pytest.approx(oauth.STATE_TTL, abs=5)
    # The cookie holds only Authlib's marker for the same key: no next, no data.
    cookie = phone.cookies.get("wxsite_session")
    payload = app.session_interface.get_signing_serializer(app).loads(cookie)
    assert list(payload) == [oauth.state_key(state)]
    assert list(payload[oauth.state_key(state)]) == ["exp"]


def test_silent_login_lands_on_next(phone, live, emu):
    response = wechat_login(phone, live, next="/?x=1")
    assert response.status_code == 200
    assert response.url.split("#")[0] == live.url("/?x=1")
    assert "张三" not in response.text  # snsapi_base: no profile yet
    assert any(r.headers.get("Location") == "/?x=1" for r in response.history)
    # Later logins are silent on WeChat's side (the emulator remembers the phone's user).
    again = phone.get(live.url("/auth/login"), params={"next": "/"})
    assert again.url.split("#")[0] == live.url("/") and "/connect/" not in again.text


def test_me_escalates_to_userinfo_with_consent(phone, live, emu):
    wechat_login(phone, live)
    response = phone.get(live.url("/me"))
    assert "申请获取你的昵称、头像" in response.text  # the emulator's consent page
    response = consent(phone, response)
    assert response.url.split("#")[0] == live.url("/me")
    users = emu.users()
    assert "张三" in response.text
    assert users["zhangsan"]["openids"][APPID] in response.text
    assert users["zhangsan"]["unionid"] in response.text
    assert "已关注公众号" in response.text
    assert response.headers["Cache-Control"] == "no-store"


def test_refusing_consent_ends_on_a_friendly_page_without_loop(phone, live, emu):
    wechat_login(phone, live)
    response = wechat_login(phone, live, scope="snsapi_userinfo", next="/me", action="deny")
    assert response.status_code == 403
    assert "你已取消授权" in response.text and "重试" in response.text
    # /me now shows what we have instead of asking again (no loop).
    me = phone.get(live.url("/me"))
    assert me.status_code == 200 and me.url.split("#")[0] == live.url("/me")
    assert "未授权昵称头像" in me.text
    # Consent given later, on the person's own initiative, is honoured.
    again = wechat_login(phone, live, scope="snsapi_userinfo", next="/me")
    assert "张三" in again.text and "未授权昵称头像" not in again.text


def test_callback_without_code_or_state(client, emu):
    response = client.get("/auth/callback")
    assert response.status_code == 400
    assert "登录链接无效，请重新进入" in response.get_data(as_text=True)
    assert emu.count(protocol.SNS_ACCESS_TOKEN) == 0


@pytest.mark.parametrize(
    "state",
    ["a" * 129, "abc-def", "abc%00def", "状态", "abc def", "", "abc\x00"],
)
def test_malformed_state_is_400(client, emu, state):
    response = client.get("/auth/callback", query_string={"code": "x", "state": state})
    assert response.status_code == 400
    assert emu.count(protocol.SNS_ACCESS_TOKEN) == 0


def session_of(app, cookie):
    """Decode a session cookie of ``app``, without what any page may add (CSRF, freshness)."""
    data = app.session_interface.get_signing_serializer(app).loads(cookie)
    data.pop("csrf_token", None)
    data.pop("_fresh", None)
    return data


def test_code_with_missing_state_is_rejected_before_exchange(app, phone, live, emu):
    url = callback_url(emu, phone, live)
    code = parse_qs(urlsplit(url).query)["code"][0]
    before = phone.cookies.get("wxsite_session")
    assert before  # the attempt's marker lives in this session
    response = phone.get(live.url("/auth/callback"), params={"code": code})
    assert response.status_code == 400
    assert emu.count(protocol.SNS_ACCESS_TOKEN) == 0
    # Session unchanged (the attempt's marker still there, no login), and still logged out.
    assert session_of(app, phone.cookies.get("wxsite_session")) == session_of(app, before)
    assert "_user_id" not in session_of(app, before)
    assert phone.get(live.url("/auth/bind"), allow_redirects=False).status_code == 302


def test_state_from_another_browser_is_refused(phone, live, emu):
    url = callback_url(emu, phone, live)  # the attacker's own authorization
    victim = phone_session()
    response = victim.get(url)
    assert response.status_code == 403
    assert "登录已失效，请重试" in response.text
    assert emu.count(protocol.SNS_ACCESS_TOKEN) == 0
    assert victim.get(live.url("/me"), allow_redirects=False).status_code == 302  # not logged in


def test_replayed_callback_after_success_goes_to_next(phone, live, emu):
    url = callback_url(emu, phone, live, next="/healthz")
    first = phone.get(url)
    assert first.url.split("#")[0] == live.url("/healthz")
    again = phone.get(url, allow_redirects=False)  # Back button / refresh
    assert again.status_code == 302 and again.headers["Location"] == "/healthz"
    assert emu.count(protocol.SNS_ACCESS_TOKEN) == 1


def test_lost_first_response_does_not_lock_the_user_out(phone, live, emu):
    url = callback_url(emu, phone, live)
    jar = phone.cookies.copy()
    assert phone.get(url).url.split("#")[0] == live.url("/")
    phone.cookies = jar  # the first response's Set-Cookie never reached the phone
    again = phone.get(url)
    assert again.status_code == 200 and again.url.split("#")[0] == live.url("/")
    assert phone.get(live.url("/auth/bind"), allow_redirects=False).status_code == 200


def test_concurrent_deliveries_of_one_callback_all_end_logged_in_as_one_person(
    app, phone, live, emu
):
    # WeChat's double redirect plus impatient refreshes: the same callback URL five times at
    # once from one browser, none of which has seen another's Set-Cookie.
    url = callback_url(emu, phone, live, user="lisi", next="/healthz")
    jar = phone.cookies.copy()
    emu.fault(protocol.SNS_ACCESS_TOKEN, stall=0.5)  # the exchange is slow: they overlap
    sessions = [phone_session() for _ in range(5)]
    for session in sessions:
        session.cookies = jar.copy()
    answers = in_parallel([partial(s.get, url, allow_redirects=False) for s in sessions])
    browsers = list(zip(sessions, answers))
    assert [r.status_code for _, r in browsers] == [302] * 5
    assert {r.headers["Location"] for _, r in browsers} == {"/healthz"}
    assert emu.count(protocol.SNS_ACCESS_TOKEN) == 1  # one request traded the code
    openid = emu.users()["lisi"]["openids"][APPID]
    with app.app_context():
        for browser, _ in browsers:  # each one's cookie is a live login as lisi
            login_id = session_of(app, browser.cookies.get("wxsite_session"))["_user_id"]
            assert store.get_login(store.get_db(), login_id, 3600)["openid"] == openid


def test_double_delivery_with_two_codes_logs_in_once(phone, live, emu):
    link = authorize_link(phone, live)
    first = emu.authorize(link, user="zhangsan")
    state = parse_qs(urlsplit(first).query)["state"][0]
    # WeChat's second delivery: same state, a fresh code for the same person.
    second = emu.authorize(link, user="zhangsan")
    assert parse_qs(urlsplit(second).query)["state"][0] == state
    emu.fault(protocol.SNS_ACCESS_TOKEN, stall=0.5)
    results = []

    def visit(url):
        r = phone.get(url, allow_redirects=False)
        results.append(r.status_code)

    threads = [threading.Thread(target=visit, args=(u,)) for u in (first, second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [302, 302]
    assert emu.count(protocol.SNS_ACCESS_TOKEN) == 1
    assert phone.get(live.url("/auth/bind"), allow_redirects=False).status_code == 200


def test_expired_state(app, phone, live, emu):
    url = callback_url(emu, phone, live)
    app.config["WXSITE_CLOCK"] = lambda: time.time() + 601  # ten minutes and a second later
    response = phone.get(url)
    assert response.status_code == 400 and "链接已过期" in response.text
    assert "重试" in response.text
    assert emu.count(protocol.SNS_ACCESS_TOKEN) == 0


def test_empty_code_is_400_locally(phone, live, emu):
    url = callback_url(emu, phone, live)
    state = parse_qs(urlsplit(url).query)["state"][0]
    response = phone.get(live.url("/auth/callback"), params={"code": "", "state": state})
    assert response.status_code == 400
    assert emu.count(protocol.SNS_ACCESS_TOKEN) == 0


@pytest.mark.parametrize(
    "errcode", [protocol.INVALID_CODE, protocol.CODE_USED, protocol.CODE_EXPIRED]
)
def test_bad_code_once_restarts_and_logs_in(phone, live, emu, errcode):
    emu.fault(protocol.SNS_ACCESS_TOKEN, errcode=errcode)
    response = wechat_login(phone, live, next="/healthz")
    assert response.status_code == 200 and here(response) == live.url("/healthz")
    assert emu.count(protocol.SNS_ACCESS_TOKEN) == 2  # the refused code, then a fresh one
    assert is_logged_in(phone, live)


@pytest.mark.parametrize("errcode", [protocol.INVALID_CODE, protocol.CODE_USED])
def test_bad_code_every_time_restarts_once_then_friendly_page(phone, live, emu, errcode):
    emu.fault(protocol.SNS_ACCESS_TOKEN, errcode=errcode, count=-1)
    response = wechat_login(phone, live)
    assert response.status_code == 400
    assert "授权失败，请重试" in response.text and "重试" in response.text
    assert emu.count(protocol.SNS_ACCESS_TOKEN) == 2  # the first try and one fresh start
    assert not is_logged_in(phone, live)


def test_second_delivery_with_another_code_after_success_reuses_the_login(phone, live, emu):
    link = authorize_link(phone, live, next="/healthz")
    first, second = emu.authorize(link), emu.authorize(link)
    jar = phone.cookies.copy()
    assert phone.get(first, allow_redirects=False).status_code == 302
    phone.cookies = jar  # the browser shows the second delivery: the first's cookie is lost
    response = phone.get(second, allow_redirects=False)
    assert response.status_code == 302 and response.headers["Location"] == "/healthz"
    assert emu.count(protocol.SNS_ACCESS_TOKEN) == 1  # one exchange per state
    assert is_logged_in(phone, live)


def test_second_delivery_succeeds_when_the_first_was_refused(phone, live, emu):
    link = authorize_link(phone, live, next="/healthz")
    first, second = emu.authorize(link), emu.authorize(link)
    emu.fault(protocol.SNS_ACCESS_TOKEN, errcode=protocol.CODE_USED)
    refused = phone.get(first, allow_redirects=False)
    assert refused.status_code == 302 and refused.headers["Location"].startswith("/auth/login")
    response = phone.get(second, allow_redirects=False)  # the state was given back
    assert response.status_code == 302 and response.headers["Location"] == "/healthz"
    assert is_logged_in(phone, live)


def test_back_onto_the_callback_after_logout_is_a_friendly_page(phone, live, emu):
    url = callback_url(emu, phone, live)
    phone.get(url)
    page = phone.get(live.url("/auth/bind"))
    phone.post(live.url("/auth/logout"), data={"csrf_token": csrf_token(page.text)})
    response = phone.get(url)
    assert response.status_code == 403 and "登录已失效，请重试" in response.text
    assert 'href="/auth/login?next=' in response.text  # the retry button
    assert emu.count(protocol.SNS_ACCESS_TOKEN) == 1
    assert not is_logged_in(phone, live)


@pytest.mark.parametrize(
    "errcode,status,words",
    [
        (protocol.INVALID_APPSECRET, 503, "服务配置错误"),
        (protocol.INVALID_APPID, 503, "服务配置错误"),
        (protocol.INVALID_CREDENTIAL, 503, "服务配置错误"),
        (protocol.IP_NOT_WHITELISTED, 503, "服务配置错误"),
        (protocol.QUOTA_REACHED, 503, "服务繁忙"),
        (protocol.SYSTEM_BUSY, 503, "微信服务暂时不可用"),
    ],
)
def test_exchange_errors_map_to_clear_pages(phone, live, emu, errcode, status, words, caplog):
    emu.fault(protocol.SNS_ACCESS_TOKEN, errcode=errcode, count=-1)
    response = wechat_login(phone, live)
    assert response.status_code == status
    assert words in response.text and "重试" in response.text
    assert "Traceback" not in response.text
    assert protocol.EMULATOR_SECRET not in caplog.text
    assert emu.count(protocol.SNS_ACCESS_TOKEN) <= 3  # bounded retries only for -1


@pytest.mark.parametrize(
    "fault",
    [
        {"status": 502},
        {"body": '{"openid": ', "content_type": "application/json"},
        {"body": '{"access_token": "x"}'},
    ],
)
def test_broken_exchange_answers_are_503(phone, live, emu, fault):
    emu.fault(protocol.SNS_ACCESS_TOKEN, count=-1, **fault)
    response = wechat_login(phone, live)
    assert response.status_code == 503
    assert phone.get(live.url("/auth/bind"), allow_redirects=False).status_code == 302


@pytest.mark.parametrize("errcode", [protocol.API_UNAUTHORIZED, protocol.USER_UNAUTHORIZED])
def test_userinfo_refused_degrades_to_openid_only(phone, live, emu, errcode):
    wechat_login(phone, live)
    emu.fault(protocol.SNS_USERINFO, errcode=errcode)
    response = wechat_login(phone, live, scope="snsapi_userinfo", next="/me")
    assert response.status_code == 200 and here(response) == live.url("/me")
    assert "未授权昵称头像" in response.text
    assert emu.users()["zhangsan"]["openids"][APPID] in response.text
    again = phone.get(live.url("/me"))  # no loop: what we have, not another prompt
    assert here(again) == live.url("/me") and len(again.history) == 0


@pytest.mark.parametrize(
    "errcode",
    [protocol.INVALID_CREDENTIAL, protocol.INVALID_ACCESS_TOKEN, protocol.ACCESS_TOKEN_EXPIRED],
)
@pytest.mark.parametrize("times", [1, -1])
def test_stale_web_token_on_userinfo_reauthorizes_once(app, phone, live, emu, errcode, times):
    with app.app_context():
        global_token = wx.client().access_token()
    wechat_login(phone, live)
    emu.fault(protocol.SNS_USERINFO, errcode=errcode, count=times)
    response = consent(phone, phone.get(live.url("/me")))
    assert response.status_code == 200 and here(response) == live.url("/me")
    # The base login, then snsapi_userinfo, then exactly one automatic re-authorization.
    assert emu.count(protocol.SNS_ACCESS_TOKEN) == 3
    if times == 1:
        assert "张三" in response.text and "未授权昵称头像" not in response.text
    else:
        assert "未授权昵称头像" in response.text  # degraded to openid-only, no loop
    # A web token's errcode never touches the global access_token.
    with app.app_context():
        assert wx.client().access_token() == global_token
    assert emu.count(protocol.STABLE_TOKEN) == 1


def test_followers_from_the_menu_get_the_profile_silently(phone, live, emu):
    wechat_login(phone, live)
    phone.cookies.set("wxemu_from_menu", "1")
    response = phone.get(live.url("/me"))
    assert here(response) == live.url("/me") and "张三" in response.text
    assert all("/connect/" not in r.url or r.status_code == 302 for r in response.history)


def test_stored_profile_is_refreshed_without_a_prompt(app, phone, live, emu):
    wechat_login(phone, live, scope="snsapi_userinfo", next="/me")
    with app.app_context():
        store.get_db().execute("UPDATE wechat_users SET profile_at = 0, web_token_expires = 0")
    response = phone.get(live.url("/me"))
    assert here(response) == live.url("/me") and "张三" in response.text
    assert all("/connect/" not in r.url for r in response.history)  # no authorization
    assert emu.count(protocol.SNS_REFRESH_TOKEN) == 1 and emu.count(protocol.SNS_USERINFO) == 2


def test_non_wechat_browser_gets_qr_page(tmp_path, emu):
    from support import site_config
    from wxsite import create_app

    app = create_app(
        site_config(
            tmp_path,
            emu,
            WX_APPID="wx0123456789abcdef",
            WX_SECRET="x",
            WX_API_BASE=emu.base_url,
            WX_OPEN_BASE=emu.base_url,
        )
    )
    client = app.test_client()
    response = client.get("/me?tab=1", headers={"User-Agent": DESKTOP_UA})
    text = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "请在微信中打开" in text and "<svg" in text
    assert "http://localhost/me?tab=1" in text
    wechat = client.get("/me", headers={"User-Agent": WECHAT_UA})
    assert wechat.status_code == 302 and wechat.headers["Location"].startswith("/auth/login")


def test_emulator_mode_lets_any_browser_log_in(live, emu):
    desktop = requests.Session()
    desktop.headers["User-Agent"] = DESKTOP_UA
    response = wechat_login(desktop, live)
    assert response.url.split("#")[0] == live.url("/")


def test_json_requests_without_session_get_401_json(client):
    response = client.get("/me", headers={"Accept": "application/json"})
    assert response.status_code == 401
    assert response.get_json()["error"] == "login_required"


def test_a_login_behind_a_prefix_comes_back_with_it(tmp_path, emu):
    from support import site_config

    from wxsite import create_app

    app = create_app(site_config(tmp_path, emu, WX_PROXY_HOPS=1))
    client = app.test_client()
    prefix = {"X-Forwarded-Prefix": "/wx", "User-Agent": WECHAT_UA}
    start = client.get("/me", headers=prefix)
    assert start.status_code == 302 and start.headers["Location"].startswith("/wx/auth/login?")
    link = client.get(start.headers["Location"][len("/wx") :], headers=prefix)
    callback = urlsplit(emu.authorize(link.headers["Location"], user="zhangsan"))
    assert callback.path == "/wx/auth/callback"
    back = client.get(f"/auth/callback?{callback.query}", headers=prefix)
    assert back.status_code == 302 and back.headers["Location"] == "/wx/me"
