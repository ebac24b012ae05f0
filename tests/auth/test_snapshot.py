"""Snapshot-page users (快照页, SPEC §4): a virtual openid is never stored, bound or merged."""

import json

from support import callback_url
from wxsite import store
from wxsite.wechat import protocol

SNAPSHOT_ANSWER = {
    "access_token": "SNAPSHOT_WEB_TOKEN",
    "expires_in": 7200,
    "refresh_token": "SNAPSHOT_REFRESH",
    "openid": "o-virtual-snapshot-openid",
    "scope": "snsapi_userinfo",
    "unionid": "u-virtual-snapshot",
    "is_snapshotuser": 1,
}


def counts(app):
    with app.app_context():
        db = store.get_db()
        return {
            t: db.scalar(f"SELECT COUNT(*) FROM {t}") for t in ("people", "wechat_users", "logins")
        }


def test_snapshot_login_is_not_stored_and_the_full_login_that_follows_works(app, phone, live, emu):
    url = callback_url(emu, phone, live, user="zhangsan", next="/me", scope="snsapi_userinfo")
    emu.fault(
        protocol.SNS_ACCESS_TOKEN, body=json.dumps(SNAPSHOT_ANSWER), content_type="application/json"
    )
    snapshot = phone.get(url, allow_redirects=False)
    assert snapshot.status_code == 200
    assert "「使用完整服务」" in snapshot.text
    assert "o-virtual-snapshot-openid" not in snapshot.text
    assert counts(app) == {"people": 0, "wechat_users": 0, "logins": 0}
    assert phone.get(live.url("/auth/bind"), allow_redirects=False).status_code == 302  # anonymous
    # 「使用完整服务」 reopens the page in full mode: the login then proceeds normally.
    full = phone.get(url)
    assert full.url.split("#")[0] == live.url("/me")
    assert counts(app)["wechat_users"] == 1
    with app.app_context():
        row = store.get_db().one("SELECT openid, unionid FROM wechat_users")
    assert row["openid"] == emu.users()["zhangsan"]["openids"][protocol.EMULATOR_APPID]
    assert row["unionid"] != "u-virtual-snapshot"


def test_the_emulators_snapshot_code_through_the_site(app, wechat, emu):
    # WeChat's own snapshot answer (the emulator's, not a faked body): a virtual openid.
    emu.snapshot("zhangsan")
    snapshot = wechat.login(user="zhangsan", scope="snsapi_userinfo", next="/me")
    assert "「使用完整服务」" in snapshot.text
    assert counts(app) == {"people": 0, "wechat_users": 0, "logins": 0}
    assert wechat.get("/me", allow_redirects=False).status_code == 302  # nobody logged in
    full = wechat.login(user="zhangsan", scope="snsapi_userinfo", next="/me")
    assert full.url.split("#")[0] == wechat.url("/me") and "张三" in full.text
    assert counts(app) == {"people": 1, "wechat_users": 1, "logins": 1}
    with app.app_context():
        openid = store.get_db().scalar("SELECT openid FROM wechat_users")
    assert openid == emu.users()["zhangsan"]["openids"][protocol.EMULATOR_APPID]
