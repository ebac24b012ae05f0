"""The authorization page: strict link checks, picker, consent, silent flows, cookies."""

import re
from urllib.parse import parse_qs, quote, urlsplit

import pytest

from wxsite.wechat import protocol

from .conftest import APPID, APPID_2, CALLBACK, auth_link

ENC = quote(CALLBACK, safe="")
GOOD = f"appid={APPID}&redirect_uri={ENC}&response_type=code&scope=snsapi_base&state=abc"


def _query(location):
    return parse_qs(urlsplit(location).query, keep_blank_values=True)


def test_good_link_shows_the_picker_with_every_user(emulator):
    r = emulator.get(auth_link())
    assert r.status_code == 200
    html = r.text
    assert "申请获取你的昵称、头像" in html
    for key, nickname in [("zhangsan", "张三"), ("lisi", "李四"), ("zhaoliu", "赵六")]:
        assert f'value="{key}"' in html and nickname in html
    assert "王五 · Émile 🌟" in html
    # Markup in a nickname is escaped, not rendered.
    assert "周八 &lt;b&gt;&amp;" in html
    assert "已关注" in html and "未关注" in html
    assert 'id="wxemu-from-menu"' in html
    assert 'name="action" value="allow"' in html and 'name="action" value="deny"' in html
    # The #wechat_redirect check is an external script (the page needs no inline JS).
    assert "/_emu/static/authorize.js" in html and "<script>" not in html


def test_base_scope_picker_has_enter_button_only(emulator):
    html = emulator.get(auth_link(scope=protocol.SCOPE_BASE)).text
    assert "进入" in html and 'value="deny"' not in html
    assert "申请获取你的昵称、头像" not in html


def test_authorize_script_checks_the_fragment(emulator):
    r = emulator.get("/_emu/static/authorize.js")
    assert r.status_code == 200
    assert "#wechat_redirect" in r.text and "location.hash" in r.text


@pytest.mark.parametrize(
    "query, message",
    [
        (
            f"redirect_uri={ENC}&appid={APPID}&response_type=code&scope=snsapi_base&state=abc",
            "参数顺序错误",
        ),
        (
            f"appid={APPID}&redirect_uri={ENC}&response_type=code&state=abc&scope=snsapi_base",
            "参数顺序错误",
        ),
        (
            f"appid={APPID}&redirect_uri={CALLBACK}&response_type=code&scope=snsapi_base",
            "redirect_uri 参数错误",
        ),
        (
            f"appid={APPID}&redirect_uri=http%3A//127.0.0.1/cb&response_type=code"
            "&scope=snsapi_base",
            "redirect_uri 参数错误",
        ),
        (
            f"appid={APPID}&redirect_uri={quote('/auth/callback', safe='')}"
            "&response_type=code&scope=snsapi_base",
            "redirect_uri 参数错误",
        ),
        (
            f"appid={APPID}&redirect_uri={quote('ftp://x.example/cb', safe='')}"
            "&response_type=code&scope=snsapi_base",
            "redirect_uri 参数错误",
        ),
        (f"appid={APPID}&redirect_uri={ENC}&response_type=code&scope=snsapi_login", "scope"),
        (f"appid={APPID}&redirect_uri={ENC}&response_type=code&scope=", "scope 不能为空"),
        (
            f"appid={APPID}&redirect_uri={ENC}&response_type=token&scope=snsapi_base",
            "response_type",
        ),
        (f"{GOOD[:-3]}a-b", "state 参数错误"),
        (f"{GOOD[:-3]}{'a' * 129}", "state 参数错误"),
        (GOOD[:-3], "state 参数错误"),
        (GOOD.replace(APPID, "wx0000000000000bad"), "appid 参数错误"),
        (GOOD.replace(f"appid={APPID}&", ""), "appid 不能为空"),
        (f"{GOOD}&foo=bar", "多余的参数 foo"),
        (f"{GOOD}&connect_redirect=1&lang=zh_CN", "多余的参数 lang"),
        (f"{GOOD}&state=abc", "重复的参数 state"),
        (f"{GOOD}&connect_redirect=2", "connect_redirect"),
        ("", "缺少参数"),
    ],
)
def test_broken_links_get_an_error_page(emulator, query, message):
    r = emulator.get(f"{protocol.AUTHORIZE}?{query}")
    assert r.status_code == 400
    assert "Oops! Something went wrong" in r.text
    assert message in r.text
    assert 'name="user"' not in r.text


@pytest.mark.parametrize("extra", ["&connect_redirect=1", ""])
def test_connect_redirect_and_missing_state_are_accepted(emulator, extra):
    assert emulator.get(f"{protocol.AUTHORIZE}?{GOOD}{extra}").status_code == 200
    no_state = auth_link(state=None, extra=extra)
    assert emulator.get(no_state).status_code == 200


def test_redirect_uri_may_carry_its_own_encoded_query(emulator):
    link = auth_link(redirect_uri=CALLBACK + "?next=%2Fme&x=1", scope=protocol.SCOPE_BASE)
    location = emulator.control.authorize(link, "lisi")
    assert location.startswith(CALLBACK + "?next=%2Fme&x=1&code=")
    assert _query(location)["state"] == ["xyz123"]


def test_picker_allow_gives_a_code_and_remembers_the_user(emulator):
    r = emulator.post(
        protocol.AUTHORIZE + "/confirm",
        data={
            "appid": APPID,
            "redirect_uri": CALLBACK,
            "response_type": "code",
            "scope": "snsapi_userinfo",
            "state": "s1",
            "user": "lisi",
            "action": "allow",
        },
    )
    assert r.status_code == 302
    location = r.headers["Location"]
    assert location.startswith(CALLBACK + "?code=")
    query = _query(location)
    assert re.fullmatch(r"[A-Za-z0-9]{32}", query["code"][0])
    assert query["state"] == ["s1"]
    assert emulator.http.cookies.get("wxemu_user") == "lisi"
    assert emulator.http.cookies.get("wxemu_from_menu") is None


def test_picker_deny_comes_back_without_code(emulator):
    location = emulator.control.authorize(auth_link(state="s2"), "lisi", action="deny")
    assert location == CALLBACK + "?state=s2"


def test_deny_without_state_comes_back_bare(emulator):
    location = emulator.control.authorize(auth_link(state=None), "lisi", action="deny")
    assert location == CALLBACK


def test_confirm_rechecks_its_fields(emulator):
    fields = {
        "appid": APPID,
        "redirect_uri": "javascript:alert(1)",
        "response_type": "code",
        "scope": "snsapi_base",
        "user": "lisi",
        "action": "allow",
    }
    assert emulator.post(protocol.AUTHORIZE + "/confirm", data=fields).status_code == 400
    fields.update(redirect_uri=CALLBACK, user="nobody")
    assert emulator.post(protocol.AUTHORIZE + "/confirm", data=fields).status_code == 400
    fields.update(user="lisi", action="maybe")
    assert emulator.post(protocol.AUTHORIZE + "/confirm", data=fields).status_code == 400


def test_snsapi_base_is_silent_with_the_cookie(emulator):
    emulator.http.cookies.set("wxemu_user", "lisi")
    r = emulator.get(auth_link(scope=protocol.SCOPE_BASE, state="s3"))
    assert r.status_code == 302
    query = _query(r.headers["Location"])
    assert query["state"] == ["s3"] and len(query["code"][0]) == 32


def test_unknown_cookie_user_gets_the_picker(emulator):
    emulator.http.cookies.set("wxemu_user", "ghost")
    assert emulator.get(auth_link(scope=protocol.SCOPE_BASE)).status_code == 200


def test_userinfo_with_cookie_shows_consent_for_that_user(emulator):
    emulator.http.cookies.set("wxemu_user", "lisi")
    r = emulator.get(auth_link())
    assert r.status_code == 200
    assert "申请获取你的昵称、头像" in r.text
    assert '<input type="hidden" name="user" value="lisi">' in r.text
    assert 'name="user" value="zhangsan"' not in r.text
    assert "切换用户" in r.text


def test_switch_user_clears_the_cookie_and_returns_to_the_link(emulator):
    emulator.http.cookies.set("wxemu_user", "lisi")
    link = auth_link()
    r = emulator.get(link.replace(protocol.AUTHORIZE, protocol.AUTHORIZE + "/switch"))
    assert r.status_code == 302
    assert r.headers["Location"].endswith(link + "#wechat_redirect")
    assert "wxemu_user=;" in r.headers["Set-Cookie"]


def test_follower_from_menu_is_authorized_silently_for_userinfo(emulator):
    emulator.http.cookies.set("wxemu_user", "zhangsan")
    emulator.http.cookies.set("wxemu_from_menu", "1")
    r = emulator.get(auth_link())
    assert r.status_code == 302 and "code=" in r.headers["Location"]


@pytest.mark.parametrize(
    "user, appid, from_menu",
    [
        ("zhangsan", APPID, None),  # follower, but not from the menu
        ("lisi", APPID, "1"),  # from the menu, but not a follower
        ("zhangsan", APPID_2, "1"),  # follows app 1, not app 2
    ],
)
def test_userinfo_needs_consent_otherwise(emulator, user, appid, from_menu):
    emulator.http.cookies.set("wxemu_user", user)
    if from_menu:
        emulator.http.cookies.set("wxemu_from_menu", from_menu)
    assert emulator.get(auth_link(appid=appid)).status_code == 200


def test_from_menu_checkbox_sets_and_clears_its_cookie(emulator):
    fields = {
        "appid": APPID,
        "redirect_uri": CALLBACK,
        "response_type": "code",
        "scope": "snsapi_userinfo",
        "user": "zhangsan",
        "action": "allow",
    }
    emulator.post(protocol.AUTHORIZE + "/confirm", data=dict(fields, from_menu="1"))
    assert emulator.http.cookies.get("wxemu_from_menu") == "1"
    r = emulator.get(auth_link())
    assert r.status_code == 302  # now silent: follower from the menu
    emulator.post(protocol.AUTHORIZE + "/confirm", data=fields)
    assert emulator.http.cookies.get("wxemu_from_menu") is None


def test_follow_changes_show_on_the_picker_and_silence(emulator):
    emulator.control.set_follows("lisi", [APPID])
    emulator.http.cookies.set("wxemu_user", "lisi")
    emulator.http.cookies.set("wxemu_from_menu", "1")
    assert emulator.get(auth_link()).status_code == 302


def test_authorize_calls_are_counted(emulator):
    emulator.get(auth_link())
    emulator.get(auth_link(appid="bad"))
    assert emulator.control.counters()[protocol.AUTHORIZE] == 2


def test_auth_domains_restrict_redirect_uri(make_emulator):
    emu = make_emulator(EMU_AUTH_DOMAINS=["127.0.0.1:5000", "site.example"])
    assert emu.get(auth_link()).status_code == 200
    other = auth_link(redirect_uri="https://site.example/cb")
    assert emu.get(other).status_code == 200
    r = emu.get(auth_link(redirect_uri="http://evil.example/cb"))
    assert r.status_code == 400 and "redirect_uri 域名与后台配置不一致" in r.text
