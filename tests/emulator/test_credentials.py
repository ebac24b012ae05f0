"""Global credentials: classic and stable access_token, jsapi_ticket, user/info, revoke."""

import pytest

from wxsite.emulator import wechat_facts as facts
from wxsite.wechat import protocol

from .conftest import APPID, APPID_2, SECRET, SECRET_2

GRACE = protocol.CLASSIC_TOKEN_GRACE


def classic(emulator, appid=APPID, secret=SECRET, grant_type="client_credential"):
    params = {"grant_type": grant_type, "appid": appid, "secret": secret}
    return emulator.get(protocol.TOKEN, params=params).json()


def stable(emulator, force_refresh=False, appid=APPID, secret=SECRET, **extra):
    payload = {
        "grant_type": "client_credential",
        "appid": appid,
        "secret": secret,
        "force_refresh": force_refresh,
        **extra,
    }
    return emulator.post(protocol.STABLE_TOKEN, json=payload).json()


def ticket(emulator, token):
    params = {"access_token": token, "type": "jsapi"}
    return emulator.get(protocol.TICKET, params=params).json()


def works(emulator, token):
    """Tell whether *token* is accepted (or return the errcode)."""
    body = ticket(emulator, token)
    return True if body.get("errcode") == 0 else body["errcode"]


def test_classic_token_shape(emulator):
    body = classic(emulator)
    assert set(body) == {"access_token", "expires_in"}
    assert body["expires_in"] == 7200
    assert len(body["access_token"]) >= 64


@pytest.mark.parametrize(
    "kwargs, errcode",
    [
        ({"secret": "wrong"}, protocol.INVALID_APPSECRET),
        ({"appid": "wx0000000000000bad"}, protocol.INVALID_APPID),
        ({"grant_type": "authorization_code"}, protocol.INVALID_GRANT_TYPE),
    ],
)
def test_classic_token_errors(emulator, kwargs, errcode):
    assert classic(emulator, **kwargs) == {"errcode": errcode, "errmsg": facts.ERRMSG[errcode]}


def test_new_classic_token_invalidates_previous_after_grace(emulator):
    old = classic(emulator)["access_token"]
    new = classic(emulator)["access_token"]
    assert old != new
    assert works(emulator, old) is True  # still inside the grace
    emulator.control.advance(GRACE + 1)
    assert works(emulator, old) == protocol.INVALID_CREDENTIAL
    assert works(emulator, new) is True


def test_classic_tokens_of_other_appid_are_untouched(emulator):
    other = classic(emulator, APPID_2, SECRET_2)["access_token"]
    classic(emulator)
    emulator.control.advance(GRACE + 1)
    assert works(emulator, other) is True


def test_classic_token_expires(emulator):
    token = classic(emulator)["access_token"]
    emulator.control.advance(7200 + 1)
    assert works(emulator, token) == protocol.ACCESS_TOKEN_EXPIRED


def test_grace_is_configurable(make_emulator):
    emu = make_emulator(EMU_CLASSIC_GRACE=0)
    old = emu.token()
    emu.token()
    assert works(emu, old) == protocol.INVALID_CREDENTIAL


def test_stable_token_is_reused_with_remaining_lifetime(emulator):
    first = stable(emulator)
    emulator.control.advance(1000)
    second = stable(emulator)
    assert second["access_token"] == first["access_token"]
    assert 6190 <= second["expires_in"] <= 6200
    # A classic fetch does not disturb the stable token (WeChat keeps them apart).
    classic(emulator)
    emulator.control.advance(GRACE + 1)
    assert works(emulator, first["access_token"]) is True


def test_stable_token_renews_after_expiry(emulator):
    first = stable(emulator)["access_token"]
    emulator.control.advance(7200)
    second = stable(emulator)
    assert second["access_token"] != first and second["expires_in"] == 7200


def test_stable_force_refresh_keeps_old_for_the_grace(emulator):
    first = stable(emulator)["access_token"]
    second = stable(emulator, force_refresh=True)["access_token"]
    assert second != first
    assert stable(emulator)["access_token"] == second
    assert works(emulator, first) is True
    emulator.control.advance(GRACE + 1)
    assert works(emulator, first) == protocol.INVALID_CREDENTIAL
    assert works(emulator, second) is True


@pytest.mark.parametrize(
    "kwargs, errcode",
    [
        ({"secret": "wrong"}, protocol.INVALID_APPSECRET),
        ({"appid": "wx0000000000000bad"}, protocol.INVALID_APPID),
        ({"grant_type": "password"}, protocol.INVALID_GRANT_TYPE),
        ({"force_refresh": "yes"}, 47001),
    ],
)
def test_stable_token_errors(emulator, kwargs, errcode):
    assert stable(emulator, **kwargs)["errcode"] == errcode


def test_stable_token_needs_a_json_body(emulator):
    r = emulator.post(protocol.STABLE_TOKEN, data="appid=x")
    assert r.json() == {"errcode": 47001, "errmsg": "data format error"}


def test_ticket_per_call_and_grace(emulator):
    token = classic(emulator)["access_token"]
    first = ticket(emulator, token)
    assert first["errcode"] == 0 and first["errmsg"] == "ok" and first["expires_in"] == 7200
    second = ticket(emulator, token)
    assert second["ticket"] != first["ticket"]


@pytest.mark.parametrize(
    "token, errcode",
    [("bogus", protocol.INVALID_CREDENTIAL), ("", protocol.MISSING_ACCESS_TOKEN)],
)
def test_ticket_with_bad_token(emulator, token, errcode):
    assert ticket(emulator, token)["errcode"] == errcode


def test_ticket_type_must_be_jsapi(emulator):
    params = {"access_token": emulator.token(), "type": "bogus"}
    assert emulator.get(protocol.TICKET, params=params).json()["errcode"] == 40097


def test_revoke_invalidates_every_current_token_now(emulator):
    old_classic = classic(emulator)["access_token"]
    new_classic = classic(emulator)["access_token"]
    stable_token = stable(emulator)["access_token"]
    other = classic(emulator, APPID_2, SECRET_2)["access_token"]
    assert emulator.control.revoke(APPID) == {"revoked": 3}
    for token in (old_classic, new_classic, stable_token):
        assert works(emulator, token) == protocol.INVALID_CREDENTIAL
    assert works(emulator, other) is True
    # The stable endpoint now hands out a fresh token.
    fresh = stable(emulator)["access_token"]
    assert fresh != stable_token and works(emulator, fresh) is True


def test_user_info_for_follower_and_non_follower(emulator):
    token = emulator.token()
    users = emulator.control.users()
    params = {"access_token": token, "openid": users["zhangsan"]["openids"][APPID]}
    info = emulator.get(protocol.USER_INFO, params=params).json()
    assert info["subscribe"] == 1 and info["openid"] == params["openid"]
    assert info["unionid"] == users["zhangsan"]["unionid"]
    assert info["language"] == "zh_CN" and isinstance(info["subscribe_time"], int)
    assert info["remark"] == "" and info["groupid"] == 0 and info["tagid_list"] == []
    assert info["subscribe_scene"] == "ADD_SCENE_QR_CODE"
    assert "nickname" not in info and "headimgurl" not in info

    params["openid"] = users["lisi"]["openids"][APPID]
    info = emulator.get(protocol.USER_INFO, params=params).json()
    assert info == {"subscribe": 0, "openid": params["openid"], "unionid": users["lisi"]["unionid"]}

    params["openid"] = users["wangwu"]["openids"][APPID]
    info = emulator.get(protocol.USER_INFO, params=params).json()
    assert info["subscribe"] == 1 and "unionid" not in info


def test_user_info_errors(emulator):
    users = emulator.control.users()
    token = emulator.token()
    # An openid of the other account is unknown to this one.
    params = {"access_token": token, "openid": users["zhangsan"]["openids"][APPID_2]}
    assert emulator.get(protocol.USER_INFO, params=params).json()["errcode"] == 40003
    params["access_token"] = "bogus"
    assert emulator.get(protocol.USER_INFO, params=params).json()["errcode"] == 40001


def test_user_info_follows_control_changes(emulator):
    emulator.control.set_follows("lisi", [APPID_2])
    users = emulator.control.users()
    assert users["lisi"]["follows"] == [APPID_2]
    token = emulator.token(APPID_2, SECRET_2)
    params = {"access_token": token, "openid": users["lisi"]["openids"][APPID_2]}
    info = emulator.get(protocol.USER_INFO, params=params).json()
    assert info["subscribe"] == 1
    emulator.control.reset()
    assert emulator.control.users()["lisi"]["follows"] == []


def _to_china_morning(emulator):
    """Move the emulator's clock to 08:00 China time (00:00 UTC) of a coming day."""
    now = emulator.control.clock()["now"]
    emulator.control.advance(86400 - now % 86400 + 1)


def test_stable_force_refresh_is_refused_inside_30_seconds(emulator):
    first = stable(emulator, force_refresh=True)["access_token"]
    emulator.control.advance(29)
    refused = stable(emulator, force_refresh=True)
    assert refused["errcode"] == 45011
    assert stable(emulator)["access_token"] == first  # nothing was rotated
    emulator.control.advance(1)
    assert stable(emulator, force_refresh=True)["access_token"] != first


def test_stable_force_refresh_20_a_day_in_china_time(emulator):
    _to_china_morning(emulator)
    tokens = set()
    for _ in range(20):
        tokens.add(stable(emulator, force_refresh=True)["access_token"])
        emulator.control.advance(30)
    assert len(tokens) == 20
    refused = stable(emulator, force_refresh=True)
    assert refused["errcode"] == protocol.QUOTA_REACHED
    assert stable(emulator)["access_token"] in tokens  # the plain mode still answers
    # 08:00 + 20 × 30 s; the quota comes back at midnight China time (16:00 UTC).
    emulator.control.advance(16 * 3600 - 20 * 30)
    assert "access_token" in stable(emulator, force_refresh=True)
