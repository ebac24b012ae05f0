"""The whole push flow through the emulator, which signs and encrypts with its own code:
URL verification, follow/unfollow on /me, replays, every tamper kind, passive replies."""

import pytest

from support import LiveServer, wechat_login
from wxsite import store
from wxsite.wechat import protocol

TOKEN = "emulatorpushtoken"
AES_KEY = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFG"
APPID = protocol.EMULATOR_APPID


@pytest.fixture
def site(push_app, emu, mode):
    app = push_app(TOKEN, AES_KEY, "收到")
    live = LiveServer(app)
    emu.push_config(
        live.url("/wechat/push"),
        TOKEN,
        AES_KEY if mode != "plaintext" else None,
        mode,
        retry_delay=0.05,
    )
    yield app, live
    emu.push_config(None, TOKEN)
    live.shutdown()


def deliveries(app):
    with app.app_context():
        return store.get_db().scalar("SELECT COUNT(*) FROM deliveries")


def test_url_check_follow_state_and_replay(site, emu, phone):
    app, live = site
    assert emu.push_verify()["ok"] is True
    assert emu.push_verify(tamper="bad_signature")["ok"] is False
    wechat_login(phone, live, user="lisi", scope="snsapi_userinfo", next="/me")
    follow = emu.set_follows("lisi", [APPID])["pushes"][0]
    assert follow["accepted"] and follow["attempts"] == 1
    assert "已关注" in phone.get(live.url("/me")).text
    unfollow = emu.set_follows("lisi", [])["pushes"][0]
    assert unfollow["accepted"]
    assert "未关注" in phone.get(live.url("/me")).text
    before = deliveries(app)
    replay = emu.push_replay(unfollow["id"])
    assert replay["accepted"] and deliveries(app) == before  # applied once


@pytest.mark.parametrize(
    "tamper",
    [
        "bad_signature",
        "bad_msg_signature",
        "flipped_ciphertext",
        "wrong_appid",
        "stale_timestamp",
        "oversized",
        "dtd",
        "xxe",
    ],
)
def test_tampered_pushes_change_nothing(site, emu, mode, tamper):
    app, _ = site
    if mode == "plaintext" and tamper in ("bad_msg_signature", "flipped_ciphertext", "wrong_appid"):
        pytest.skip("an AES-mode tamper")
    delivery = emu.push_event("subscribe", user="lisi", tamper=tamper)
    assert 400 <= delivery["status"] < 500, delivery
    assert not delivery["accepted"]
    with app.app_context():
        assert store.get_follow(store.get_db(), APPID, delivery["openid"]) is None
    assert deliveries(app) == 0


def test_text_message_gets_a_passive_reply_the_emulator_can_read(site, emu):
    delivery = emu.push_text("你好", user="zhangsan")
    assert delivery["accepted"], delivery
    assert "收到" in (delivery["reply"] or ""), delivery
