"""WeChat Pay keys by serial: the public key and platform certificates, alone or together."""

import logging

import pytest
import requests

from pay_helpers import KEYS, read
from support import site_config
from test_pay_site import buy, notifications, pay, state
from wxsite import config, create_app, store
from wxsite.wechat import pay as wechat_pay
from wxsite.wechat import protocol

CERT_FILE = f"{KEYS}/platform_cert.pem"
CERT_SERIAL = wechat_pay.load_certificate(read("platform_cert.pem"))[0]


def test_emulator_mode_trusts_the_public_key_and_the_certificate(app):
    client = app.extensions["wxsite.pay"]
    assert set(client.serials) == {protocol.EMULATOR_PLATFORM_KEY_ID, CERT_SERIAL}
    assert client.request_serial == protocol.EMULATOR_PLATFORM_KEY_ID


def test_notifications_signed_by_either_key_are_all_applied(logged_in, live, emu, app):
    emu.pay_signer("both")  # a merchant mid-switch: each answer and notification at random
    orders = []
    for _ in range(6):
        no, params, _ = buy(logged_in, live)
        pay(emu, params)
        orders.append(no)
    sent = notifications(emu)
    serials = {n["headers"]["Wechatpay-Serial"] for n in sent}
    assert all(n["status"] == 204 for n in sent), [n["status"] for n in sent]
    with app.app_context():
        db = store.get_db()
        assert [store.get_order(db, no)["state"] for no in orders] == ["SUCCESS"] * 6
    # Six coin flips: both keys signed something (1 in 32 that one did not: sign again).
    emu.pay_signer("certificate")
    no, params, _ = buy(logged_in, live)
    pay(emu, params)
    assert notifications(emu)[-1]["headers"]["Wechatpay-Serial"] == CERT_SERIAL
    assert state(logged_in, live, no) == "SUCCESS"
    assert serials <= {protocol.EMULATOR_PLATFORM_KEY_ID, CERT_SERIAL}


def test_an_unknown_serial_is_refused_and_logged(logged_in, live, emu, app, caplog):
    no, params, _ = buy(logged_in, live)
    pay(emu, params, notify=False)
    requests.post(emu.base_url + f"/_emu/pay/notify/{no}")
    with app.app_context():  # the genuine one was applied: start over from unpaid
        store.get_db().execute(
            "UPDATE orders SET state = 'NOTPAY' WHERE out_trade_no = :no", {"no": no}
        )
        store.get_db().execute("DELETE FROM deliveries")
    sent = notifications(emu)[-1]
    headers = {**sent["headers"], "Wechatpay-Serial": "PUB_KEY_ID_0114999999999999"}
    caplog.set_level(logging.WARNING, logger="wxsite")
    response = requests.post(live.url("/pay/notify"), data=sent["body"].encode(), headers=headers)
    assert 400 <= response.status_code < 500 and response.json()["code"] == "FAIL"
    assert any("PUB_KEY_ID_0114999999999999" in r.getMessage() for r in caplog.records)
    with app.app_context():
        assert store.get_order(store.get_db(), no)["state"] == "NOTPAY"
        assert store.get_db().scalar("SELECT COUNT(*) FROM deliveries") == 0


def test_certificate_only_merchant_refuses_the_public_key(tmp_path, emu):
    base = dict(
        WXPAY_MCHID=protocol.EMULATOR_MCHID,
        WXPAY_PRIVATE_KEY_FILE=f"{KEYS}/merchant.key.pem",
        WXPAY_CERT_SERIAL=protocol.EMULATOR_MERCHANT_SERIAL,
        WXPAY_APIV3_KEY=protocol.EMULATOR_APIV3_KEY,
        WXPAY_API_BASE=emu.base_url,
        WXPAY_PLATFORM_CERT_FILES=CERT_FILE,
    )
    app = create_app(site_config(tmp_path, emu, **base))
    client = app.extensions["wxsite.pay"]
    assert client.serials == (CERT_SERIAL,) and client.request_serial == CERT_SERIAL
    emu.pay_signer("certificate")
    assert client.jsapi_order("x", "T20261124777", 1, "o-x", "https://a.example/n")
    emu.pay_signer("public_key")
    with pytest.raises(wechat_pay.PayError, match="PUB_KEY_ID_"):
        client.jsapi_order("x", "T20261124778", 1, "o-x", "https://a.example/n")


PAY_BASE = {
    "WXPAY_MCHID": "1",
    "WXPAY_PRIVATE_KEY_FILE": "/etc/hostname",
    "WXPAY_CERT_SERIAL": "S",
    "WXPAY_APIV3_KEY": "k" * 32,
}


@pytest.mark.parametrize(
    "extra,name",
    [
        ({}, "WXPAY_PUBLIC_KEY_FILE"),
        ({"WXPAY_PUBLIC_KEY_FILE": "/etc/hostname"}, "WXPAY_PUBLIC_KEY_ID"),
        ({"WXPAY_PUBLIC_KEY_ID": "PUB_KEY_ID_1"}, "WXPAY_PUBLIC_KEY_FILE"),
        ({"WXPAY_PLATFORM_CERT_FILES": "/etc/hostname,/nonexistent.pem"}, "WXPAY_PLATFORM_CERT"),
    ],
    ids=["no-key", "file-without-id", "id-without-file", "missing-cert"],
)
def test_bad_key_settings_name_the_variable(extra, name):
    with pytest.raises(config.ConfigError) as info:
        config.load({**PAY_BASE, **extra})
    assert str(info.value).startswith(name) and "\n" not in str(info.value)


def test_unparsable_certificate_is_a_config_error(tmp_path, emu):
    bad = tmp_path / "cert.pem"
    bad.write_text("-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----\n")
    settings = dict(
        WXPAY_MCHID="1",
        WXPAY_PRIVATE_KEY_FILE=f"{KEYS}/merchant.key.pem",
        WXPAY_CERT_SERIAL="S",
        WXPAY_APIV3_KEY="k" * 32,
        WXPAY_PLATFORM_CERT_FILES=f"{CERT_FILE},{bad}",
    )
    with pytest.raises(config.ConfigError, match="^WXPAY_PLATFORM_CERT_FILES is not a usable"):
        create_app(site_config(tmp_path, emu, **settings))


def test_both_at_once_sends_the_public_key_id(tmp_path, emu):
    settings = dict(
        WXPAY_MCHID=protocol.EMULATOR_MCHID,
        WXPAY_PRIVATE_KEY_FILE=f"{KEYS}/merchant.key.pem",
        WXPAY_CERT_SERIAL=protocol.EMULATOR_MERCHANT_SERIAL,
        WXPAY_APIV3_KEY=protocol.EMULATOR_APIV3_KEY,
        WXPAY_PUBLIC_KEY_FILE=f"{KEYS}/platform.pub.pem",
        WXPAY_PUBLIC_KEY_ID=protocol.EMULATOR_PLATFORM_KEY_ID,
        WXPAY_PLATFORM_CERT_FILES=CERT_FILE,
    )
    client = create_app(site_config(tmp_path, emu, **settings)).extensions["wxsite.pay"]
    assert client.request_serial == protocol.EMULATOR_PLATFORM_KEY_ID
    assert set(client.serials) == {protocol.EMULATOR_PLATFORM_KEY_ID, CERT_SERIAL}
