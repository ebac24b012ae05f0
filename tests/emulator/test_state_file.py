"""The emulator's state file: a restart keeps what WeChat would remember; reset forgets it."""

import json
import os
import re
import sqlite3

import pytest

from wxsite.emulator import create_emulator, persist
from wxsite.wechat import protocol

from .conftest import APPID, APPID_2, SECRET
from .test_jssdk import signed_config, verify
from .test_pay import Merchant

JPEG = b"\xff\xd8\xff\xe0" + b"persisted" * 50 + b"\xff\xd9"


@pytest.fixture
def state_path(tmp_path):
    return str(tmp_path / "instance" / "emulator.sqlite3")


def restart(make_emulator, emu, state_path, **config):
    """Stop *emu* and start a new emulator (a new app) on the same state file."""
    emu.running.shutdown()
    emu.running.app.extensions["wxemu.file"].close()
    return make_emulator(EMU_STATE_FILE=state_path, **config)


def test_a_restart_keeps_tokens_users_media_qr_codes_and_orders(make_emulator, state_path):
    before = make_emulator(EMU_STATE_FILE=state_path)
    assert not before.running.app.extensions["wxemu.file"].restored
    token = before.token()
    ticket = before.get(protocol.TICKET, params={"access_token": token, "type": "jsapi"}).json()
    web = before.web_token(scope=protocol.SCOPE_USERINFO)
    media_id = before.control.add_media(JPEG)
    before.control.set_follows("zhangsan", [APPID, APPID_2])
    qr = before.control.qrcode("poster-7")
    before.control.advance(60)
    merchant = Merchant(before)
    prepay_id = merchant.order("order-before-restart").json()["prepay_id"]
    merchant.paid_order("paid-before-restart")

    after = restart(make_emulator, before, state_path)
    assert after.running.app.extensions["wxemu.file"].restored
    assert after.control.clock()["offset"] == 60
    # The same global token, ticket and web grant still work.
    user = after.get(
        protocol.USER_INFO, params={"access_token": token, "openid": web["openid"]}
    ).json()
    assert user["openid"] == web["openid"] and user["subscribe"] == 1
    assert verify(after, **signed_config(ticket["ticket"])) == {"ok": True}
    info = after.get(
        protocol.SNS_USERINFO, params={"access_token": web["access_token"], "openid": web["openid"]}
    ).json()
    assert info["openid"] == web["openid"]
    refreshed = after.get(
        protocol.SNS_REFRESH_TOKEN,
        params={
            "appid": APPID,
            "grant_type": "refresh_token",
            "refresh_token": web["refresh_token"],
        },
    ).json()
    assert refreshed["openid"] == web["openid"]
    got = after.get(protocol.MEDIA_GET, params={"access_token": token, "media_id": media_id})
    assert got.content == JPEG
    assert after.control.users()["zhangsan"]["follows"] == [APPID, APPID_2]
    assert [q["ticket"] for q in after.control.qrcodes()] == [qr["ticket"]]
    # The order made before the restart can be paid, and both orders refunded.
    merchant = Merchant(after)
    assert merchant.pay(prepay_id) == {"ok": True, "errMsg": "chooseWXPay:ok"}
    for out_trade_no in ("order-before-restart", "paid-before-restart"):
        refund = merchant.refund(out_trade_no, f"refund-{out_trade_no}")
        assert refund.status_code == 200, refund.text
        assert refund.json()["status"] == "SUCCESS"
    # …and a second restart still knows the refunds.
    again = restart(make_emulator, after, state_path)
    assert len(again.control.pay_refunds()) == 2
    assert again.get(protocol.PAY_QUERY.format(out_trade_no="x")).status_code == 401  # unsigned
    query = Merchant(again).call(
        "GET", protocol.PAY_QUERY.format(out_trade_no="order-before-restart")
    )
    assert query.json()["trade_state"] == "REFUND"


def test_reset_forgets_the_file_too(make_emulator, state_path):
    before = make_emulator(EMU_STATE_FILE=state_path)
    token = before.token()
    before.control.reset()
    after = restart(make_emulator, before, state_path)
    state_file = after.running.app.extensions["wxemu.file"]
    assert state_file.existed and not state_file.restored
    body = after.get(protocol.TICKET, params={"access_token": token, "type": "jsapi"}).json()
    assert body["errcode"] == protocol.INVALID_CREDENTIAL


def test_remove_starts_clean(make_emulator, state_path):
    before = make_emulator(EMU_STATE_FILE=state_path)
    token = before.token()
    before.running.shutdown()
    before.running.app.extensions["wxemu.file"].close()
    persist.remove(state_path)
    assert not os.path.exists(state_path)
    after = make_emulator(EMU_STATE_FILE=state_path)
    body = after.get(protocol.TICKET, params={"access_token": token, "type": "jsapi"}).json()
    assert body["errcode"] == protocol.INVALID_CREDENTIAL


def test_only_what_changed_is_written(make_emulator, state_path):
    emu = make_emulator(EMU_STATE_FILE=state_path)
    app = emu.running.app
    state_file = app.extensions["wxemu.file"]
    emu.token()
    states = (app.extensions["wxemu"], app.extensions["wxemu.pay"], app.extensions["wxemu.push"])
    assert state_file.save(*states) == 0  # saved after the request already
    emu.control.add_media(JPEG)
    emu.control.add_media(JPEG)
    emu.token()
    assert state_file.save(*states) == 0
    with sqlite3.connect(state_path) as db:
        assert db.execute("select count(*) from media").fetchone() == (2,)
        tokens = db.execute("select count(*) from items where space = 'token'").fetchone()
    assert tokens == (2,)
    # A request that changes nothing writes nothing.
    changes = db_changes(state_path)
    emu.get("/_emu/users")
    emu.get(protocol.TOKEN, params={"grant_type": "client_credential", "appid": APPID})
    assert db_changes(state_path) == changes


def db_changes(path):
    with sqlite3.connect(path) as db:
        return db.execute("select space, key, value from items order by space, key").fetchall()


def test_an_unreadable_file_starts_clean(make_emulator, state_path):
    emu = make_emulator(EMU_STATE_FILE=state_path)
    emu.token()
    emu.running.shutdown()
    emu.running.app.extensions["wxemu.file"].close()
    with sqlite3.connect(state_path) as db:
        db.execute("update items set value = '{\"nonsense\": 1}' where space = 'token'")
    again = make_emulator(EMU_STATE_FILE=state_path)
    assert again.token()
    assert not again.running.app.extensions["wxemu.file"].restored


def test_without_a_file_nothing_is_written(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    app = create_emulator()
    assert "wxemu.file" not in app.extensions
    app.test_client().get(
        protocol.TOKEN,
        query_string={"grant_type": "client_credential", "appid": APPID, "secret": SECRET},
    )
    assert os.listdir(tmp_path) == []


def test_the_sites_order_survives_an_emulator_restart(tmp_path, phone):
    """Issue 17's walk: order on the site, restart the emulator, pay, refund, /orders."""
    import requests

    from support import LiveServer, csrf_token, site_config, wechat_login
    from wxsite import create_app
    from wxsite.emulator.server import start

    path = str(tmp_path / "emulator.sqlite3")
    emulator = start(create_emulator({"EMU_STATE_FILE": path}), quiet=True)
    port = emulator.port
    app = create_app(site_config(tmp_path, emulator))
    live = LiveServer(app)
    try:
        assert wechat_login(phone, live).status_code == 200
        page = phone.get(live.url("/pay/"))
        order = phone.post(
            live.url("/pay/orders"), data={"csrf_token": csrf_token(page.text), "product": "tea"}
        )
        assert order.status_code == 200, order.text[:300]
        no = order.url.rstrip("/").split("/")[-1]
        params = json.loads(re.search(r'id="pay-params">(.*?)</script>', order.text).group(1))

        emulator.shutdown()
        emulator.app.extensions["wxemu.file"].close()
        emulator = start(create_emulator({"EMU_STATE_FILE": path}), port=port, quiet=True)

        paid = requests.post(emulator.base_url + "/_emu/pay/confirm", json=params).json()
        assert paid == {"ok": True, "errMsg": "chooseWXPay:ok"}
        status = phone.get(live.url(f"/pay/orders/{no}/status")).json()
        assert status["state"] == "SUCCESS"
        refund = app.test_cli_runner().invoke(args=["pay", "refund", no])
        assert refund.exit_code == 0 and "SUCCESS" in refund.output, refund.output
        orders = phone.get(live.url("/orders")).text
        assert "已退款" in orders and "失败" not in orders
    finally:
        live.shutdown()
        emulator.shutdown()
