"""Snapshot-page codes (快照页): is_snapshotuser 1 with a virtual openid, then a real code."""

from urllib.parse import parse_qs, urlsplit

from wxsite.wechat import protocol

from .conftest import APPID, APPID_2, SECRET, auth_link


def code_of(location):
    return parse_qs(urlsplit(location).query)["code"][0]


def exchange(emulator, code, appid=APPID):
    params = {
        "appid": appid,
        "secret": protocol.EMULATOR_ACCOUNTS[appid],
        "code": code,
        "grant_type": "authorization_code",
    }
    return emulator.get(protocol.SNS_ACCESS_TOKEN, params=params).json()


def userinfo(emulator, body):
    params = {"access_token": body["access_token"], "openid": body["openid"], "lang": "zh_CN"}
    return emulator.get(protocol.SNS_USERINFO, params=params).json()


def test_armed_snapshot_skips_consent_and_gives_a_virtual_identity(emulator):
    real = emulator.control.users()["zhangsan"]
    assert emulator.control.snapshot("zhangsan") == {
        "user": "zhangsan",
        "appid": None,
        "armed": True,
    }
    # A cookie-holding user gets the page at once: no consent page in snapshot mode.
    status, headers, _ = emulator.control.request(
        "GET", auth_link(), headers={"Cookie": "wxemu_user=zhangsan"}
    )
    assert status == 302
    body = exchange(emulator, code_of(headers["Location"]))
    assert body["is_snapshotuser"] == 1 and body["scope"] == "snsapi_userinfo"
    assert body["openid"] != real["openids"][APPID] and body["openid"].startswith("o")
    assert len(body["openid"]) == 28
    assert body["unionid"] != real["unionid"]
    info = userinfo(emulator, body)
    assert info["nickname"] == "微信用户" and info["openid"] == body["openid"]
    assert info["headimgurl"].endswith("/_emu/static/snapshot-avatar.svg")
    assert info["unionid"] == body["unionid"]
    check = {"access_token": body["access_token"], "openid": body["openid"]}
    assert emulator.get(protocol.SNS_AUTH, params=check).json()["errcode"] == 0
    check["openid"] = real["openids"][APPID]
    assert emulator.get(protocol.SNS_AUTH, params=check).json()["errcode"] == 40003


def test_the_code_after_a_snapshot_is_real(emulator):
    emulator.control.snapshot("zhangsan")
    first = exchange(emulator, emulator.login("zhangsan"))
    assert first["is_snapshotuser"] == 1
    assert emulator.control.call("GET", "/snapshot") == []
    # 使用完整服务: the site asks again, the consent page shows, the real identity comes back.
    status, _, page = emulator.control.request(
        "GET", auth_link(), headers={"Cookie": "wxemu_user=zhangsan"}
    )
    assert status == 200 and "申请获取你的昵称、头像".encode() in page
    second = exchange(emulator, emulator.login("zhangsan"))
    assert second["is_snapshotuser"] == 0
    assert second["openid"] == emulator.control.users()["zhangsan"]["openids"][APPID]
    assert userinfo(emulator, second)["nickname"] == "张三"


def test_each_snapshot_gets_new_virtual_ids(emulator):
    emulator.control.snapshot("lisi")
    one = exchange(emulator, emulator.login("lisi"))
    emulator.control.snapshot("lisi")
    two = exchange(emulator, emulator.login("lisi"))
    assert one["openid"] != two["openid"]


def test_consent_page_has_a_snapshot_choice(emulator):
    page = emulator.get(auth_link()).text
    assert 'id="wxemu-snapshot"' in page
    location = emulator.control.authorize(auth_link(), "lisi", action="snapshot")
    assert exchange(emulator, code_of(location))["is_snapshotuser"] == 1


def test_snapshot_choice_is_refused_for_base_scope(emulator):
    location = emulator.control.request(
        "POST",
        protocol.AUTHORIZE + "/confirm",
        b"appid=%s&redirect_uri=http%%3A%%2F%%2F127.0.0.1%%3A5000%%2Fcb&response_type=code"
        b"&scope=snsapi_base&user=lisi&action=snapshot" % APPID.encode(),
        {"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert location[0] == 400


def test_base_scope_leaves_the_snapshot_armed(emulator):
    emulator.control.snapshot("zhangsan")
    base = exchange(emulator, emulator.login("zhangsan", scope=protocol.SCOPE_BASE))
    assert base["is_snapshotuser"] == 0
    assert exchange(emulator, emulator.login("zhangsan"))["is_snapshotuser"] == 1


def test_snapshot_for_one_account_only(emulator):
    emulator.control.snapshot("sunqi", appid=APPID_2)
    assert exchange(emulator, emulator.login("sunqi"))["is_snapshotuser"] == 0
    body = exchange(emulator, emulator.login("sunqi", appid=APPID_2), appid=APPID_2)
    assert body["is_snapshotuser"] == 1


def test_refreshed_snapshot_token_keeps_the_virtual_openid(emulator):
    emulator.control.snapshot("zhangsan")
    body = exchange(emulator, emulator.login("zhangsan"))
    refreshed = emulator.get(
        protocol.SNS_REFRESH_TOKEN,
        params={
            "appid": APPID,
            "grant_type": "refresh_token",
            "refresh_token": body["refresh_token"],
        },
    ).json()
    assert refreshed["openid"] == body["openid"]
    assert userinfo(emulator, refreshed)["nickname"] == "微信用户"


def test_virtual_openid_is_unknown_to_the_global_api(emulator):
    emulator.control.snapshot("zhangsan")
    body = exchange(emulator, emulator.login("zhangsan"))
    token = emulator.token(APPID, SECRET)
    info = emulator.get(
        protocol.USER_INFO, params={"access_token": token, "openid": body["openid"]}
    ).json()
    assert info["errcode"] == 40003


def test_user_without_unionid_gets_no_virtual_unionid(emulator):
    emulator.control.snapshot("wangwu")
    body = exchange(emulator, emulator.login("wangwu"))
    assert body["is_snapshotuser"] == 1 and "unionid" not in body


def test_control_refuses_bad_input_and_reset_disarms(emulator):
    for payload in ({"user": "nobody"}, {"user": "lisi", "appid": "wx0000000000000bad"}):
        status, _, _ = emulator.control.request(
            "POST",
            "/_emu/snapshot",
            str(payload).replace("'", '"').encode(),
            {"Content-Type": "application/json"},
        )
        assert status == 400
    emulator.control.snapshot("lisi", appid=APPID)
    assert emulator.control.call("GET", "/snapshot") == [{"user": "lisi", "appid": APPID}]
    emulator.control.reset()
    assert emulator.control.call("GET", "/snapshot") == []
