"""Web-authorization API: code exchange, refresh, sns/userinfo, sns/auth, unionid."""

import pytest

from wxsite.emulator import wechat_facts as facts
from wxsite.wechat import protocol

from .conftest import APPID, APPID_2, SECRET, SECRET_2


def exchange(emulator, code, appid=APPID, secret=SECRET, grant_type="authorization_code"):
    params = {"appid": appid, "secret": secret, "code": code, "grant_type": grant_type}
    r = emulator.get(protocol.SNS_ACCESS_TOKEN, params={k: v for k, v in params.items() if v})
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("application/json")
    return r.json()


def userinfo(emulator, token, openid):
    params = {"access_token": token, "openid": openid, "lang": "zh_CN"}
    return emulator.get(protocol.SNS_USERINFO, params=params)


def test_code_exchange_gives_web_token_with_unionid(emulator):
    body = exchange(emulator, emulator.login("zhangsan"))
    users = emulator.control.users()
    assert body["openid"] == users["zhangsan"]["openids"][APPID]
    assert body["unionid"] == users["zhangsan"]["unionid"]
    assert body["scope"] == "snsapi_userinfo"
    assert body["expires_in"] == 7200
    assert body["is_snapshotuser"] == 0
    assert body["access_token"] and body["refresh_token"]


def test_user_without_unionid_gets_none(emulator):
    body = exchange(emulator, emulator.login("wangwu"))
    assert "unionid" not in body and body["openid"].startswith("o")


def test_code_is_single_use(emulator):
    code = emulator.login()
    assert "access_token" in exchange(emulator, code)
    assert exchange(emulator, code)["errcode"] == protocol.CODE_USED


def test_code_of_another_appid_is_invalid(emulator):
    code = emulator.login(appid=APPID_2)
    assert exchange(emulator, code)["errcode"] == protocol.INVALID_CODE
    # ... and the failed attempt did not spend it for its own appid.
    assert "access_token" in exchange(emulator, code, APPID_2, SECRET_2)


def test_code_expires_after_five_minutes(emulator):
    code = emulator.login()
    emulator.control.advance(protocol.CODE_LIFETIME + 1)
    assert exchange(emulator, code)["errcode"] == protocol.INVALID_CODE


def test_code_still_good_just_before_expiry(emulator):
    code = emulator.login()
    emulator.control.advance(protocol.CODE_LIFETIME - 5)
    assert "access_token" in exchange(emulator, code)


@pytest.mark.parametrize(
    "kwargs, errcode",
    [
        ({"code": "nonexistent"}, protocol.INVALID_CODE),
        ({"code": None}, protocol.MISSING_CODE),
        ({"secret": "wrong"}, protocol.INVALID_APPSECRET),
        ({"appid": "wx0000000000000bad"}, protocol.INVALID_APPID),
        ({"appid": None}, protocol.MISSING_APPID),
        ({"grant_type": "client_credential"}, protocol.INVALID_GRANT_TYPE),
    ],
)
def test_code_exchange_errors(emulator, kwargs, errcode):
    args = {"code": emulator.login()}
    args.update(kwargs)
    body = exchange(emulator, **args)
    assert body == {"errcode": errcode, "errmsg": facts.ERRMSG[errcode]}


def test_wrong_secret_does_not_spend_the_code(emulator):
    code = emulator.login()
    assert exchange(emulator, code, secret="wrong")["errcode"] == protocol.INVALID_APPSECRET
    assert "access_token" in exchange(emulator, code)


def test_userinfo_returns_profile_in_real_utf8(emulator):
    body = emulator.web_token("wangwu")
    r = userinfo(emulator, body["access_token"], body["openid"])
    assert "王五 · Émile 🌟".encode() in r.content  # not \\u escapes
    info = r.json()
    assert info["nickname"] == "王五 · Émile 🌟"
    assert info["openid"] == body["openid"]
    assert info["privilege"] == [] and info["sex"] == 0
    assert {"province", "city", "country"} <= info.keys()
    assert info["headimgurl"] == emulator.url("/_emu/avatar/wangwu.svg")
    assert "unionid" not in info


def test_headimgurl_serves_an_svg_avatar(emulator):
    body = emulator.web_token("zhangsan")
    info = userinfo(emulator, body["access_token"], body["openid"]).json()
    assert info["unionid"] == body["unionid"]
    r = emulator.http.get(info["headimgurl"])
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("image/svg+xml")
    assert "<svg" in r.text and "张" in r.text
    assert emulator.get("/_emu/avatar/ghost.svg").status_code == 404


def test_userinfo_needs_userinfo_scope(emulator):
    body = emulator.web_token(scope=protocol.SCOPE_BASE)
    assert body["scope"] == "snsapi_base"
    info = userinfo(emulator, body["access_token"], body["openid"]).json()
    assert info["errcode"] == protocol.API_UNAUTHORIZED


def test_userinfo_token_errors(emulator):
    body = emulator.web_token()
    token, openid = body["access_token"], body["openid"]
    assert userinfo(emulator, "bogus", openid).json()["errcode"] == protocol.INVALID_CREDENTIAL
    assert userinfo(emulator, token, "o-other").json()["errcode"] == protocol.INVALID_OPENID
    emulator.control.advance(protocol.TOKEN_LIFETIME + 1)
    assert userinfo(emulator, token, openid).json()["errcode"] == protocol.ACCESS_TOKEN_EXPIRED


def test_global_token_is_not_a_web_token(emulator):
    openid = emulator.control.users()["zhangsan"]["openids"][APPID]
    body = userinfo(emulator, emulator.token(), openid).json()
    assert body["errcode"] == protocol.INVALID_CREDENTIAL


def test_sns_auth(emulator):
    body = emulator.web_token(scope=protocol.SCOPE_BASE)
    params = {"access_token": body["access_token"], "openid": body["openid"]}
    assert emulator.get(protocol.SNS_AUTH, params=params).json() == {"errcode": 0, "errmsg": "ok"}
    bad = dict(params, openid="o-other")
    assert emulator.get(protocol.SNS_AUTH, params=bad).json()["errcode"] == 40003
    bad = dict(params, access_token="bogus")
    assert emulator.get(protocol.SNS_AUTH, params=bad).json()["errcode"] == 40001
    emulator.control.advance(protocol.TOKEN_LIFETIME + 1)
    assert emulator.get(protocol.SNS_AUTH, params=params).json()["errcode"] == 42001


def test_refresh_gives_a_new_token_and_keeps_the_old(emulator):
    first = emulator.web_token()
    emulator.control.advance(3600)
    params = {
        "appid": APPID,
        "grant_type": "refresh_token",
        "refresh_token": first["refresh_token"],
    }
    second = emulator.get(protocol.SNS_REFRESH_TOKEN, params=params).json()
    assert second["access_token"] != first["access_token"]
    assert second["refresh_token"] == first["refresh_token"]
    assert second["openid"] == first["openid"] and second["scope"] == first["scope"]
    assert second["expires_in"] == 7200
    assert userinfo(emulator, first["access_token"], first["openid"]).json()["nickname"] == "张三"
    emulator.control.advance(3601)  # the first token expires, the refreshed one lives on
    assert userinfo(emulator, first["access_token"], first["openid"]).json()["errcode"] == 42001
    assert userinfo(emulator, second["access_token"], first["openid"]).json()["nickname"]


def test_refresh_token_errors(emulator):
    first = emulator.web_token()
    params = {"appid": APPID, "grant_type": "refresh_token", "refresh_token": "bogus"}
    get = emulator.get
    assert get(protocol.SNS_REFRESH_TOKEN, params=params).json()["errcode"] == 40030
    params["refresh_token"] = first["refresh_token"]
    other = dict(params, appid=APPID_2)
    assert get(protocol.SNS_REFRESH_TOKEN, params=other).json()["errcode"] == 40030
    emulator.control.advance(protocol.REFRESH_TOKEN_LIFETIME + 1)
    assert get(protocol.SNS_REFRESH_TOKEN, params=params).json()["errcode"] == 42002


def test_unionid_is_shared_across_appids_and_openids_differ(emulator):
    one = emulator.web_token("zhaoliu", appid=APPID)
    two = emulator.web_token("zhaoliu", appid=APPID_2)
    assert one["unionid"] == two["unionid"]
    assert one["openid"] != two["openid"]
    others = {emulator.web_token(u)["openid"] for u in ("zhangsan", "lisi")}
    assert one["openid"] not in others


def test_ids_are_deterministic_and_shaped_like_wechat(emulator):
    users = emulator.control.users()
    emulator.control.reset()
    assert emulator.control.users() == users
    for user in users.values():
        for openid in user["openids"].values():
            assert len(openid) == 28 and openid[0] == "o"
        assert user["unionid"] is None or len(user["unionid"]) == 28
    assert len(users) >= 5
    assert users["wangwu"]["unionid"] is None
    assert users["zhaoliu"]["follows"] == [APPID_2]
    assert users["lisi"]["follows"] == []
