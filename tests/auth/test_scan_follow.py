"""Follow to log in: the desktop's temporary parametric QR code, scanned in WeChat, pushes
SCAN / subscribe; the site answers with the confirm link, and only the person who scanned
may confirm it on the phone (issue 14, audit gap 8). Through the real emulator over HTTP,
its pushes pointed at a LiveServer of the site."""

import logging
import re
import time

import pytest
from test_scan import desktop_browser, start

from support import LiveServer, WeChat, csrf_token, site_config
from wxsite import create_app, store
from wxsite.auth.scan import LIFETIME
from wxsite.wechat import protocol

TOKEN = "followtologintoken"
AES_KEY = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFG"
APPID = protocol.EMULATOR_APPID


@pytest.fixture(params=["safe", "plaintext"])
def mode(request):
    return request.param


@pytest.fixture
def site(tmp_path, emu, mode):
    """A site with push on, the emulator pushing to it; ``(app, live)``."""
    extra = {"WX_PUSH_TOKEN": TOKEN}
    if mode == "safe":
        extra["WX_PUSH_AES_KEY"] = AES_KEY
    app = create_app(site_config(tmp_path, emu, **extra))
    live = LiveServer(app)
    emu.push_config(
        live.url("/wechat/push"), TOKEN, AES_KEY if mode == "safe" else None, mode, retry_delay=0.05
    )
    yield app, live
    emu.push_config(None, TOKEN)
    live.shutdown()


@pytest.fixture
def desktop():
    return desktop_browser()


def shown(site, emu, desktop):
    """zhangsan follows; the desktop opens its page: return (app, live, link, status)."""
    app, live = site
    emu.set_follows("zhangsan", [APPID])
    return (app, live, *start(live, desktop))


def follow_code(emu):
    """The parametric code the desktop page just had made at the emulator."""
    code = emu.qrcodes()[-1]
    assert code["action_name"] == "QR_STR_SCENE" and code["scene_str"].startswith("login_")
    return code


def scan(emu, code, user):
    """Scan the code in WeChat as ``user``; return (the push's delivery, the link replied)."""
    delivery = emu.scan(code["ticket"], user)["delivery"]
    assert delivery["accepted"], delivery
    match = re.search(r'href="([^"]+)"', delivery["reply"] or "")
    return delivery, match.group(1) if match else None


def phone_of(live, user, **login):
    phone = WeChat(live)
    phone.login(user=user, **login)
    return phone


def confirm(phone, link):
    page = phone.session.get(link)
    assert "在电脑上登录" in page.text, page.text[:300]
    return phone.session.post(f"{link}/confirm", data={"csrf_token": csrf_token(page.text)})


def row(app, link):
    with app.app_context():
        return store.get_scan(store.get_db(), link.rstrip("/").split("/")[-1])


def deliveries(app):
    with app.app_context():
        return store.get_db().scalar("SELECT COUNT(*) FROM deliveries")


def test_a_follower_scans_then_confirms_on_the_phone(site, emu, desktop):
    app, live = site
    emu.set_follows("zhangsan", [APPID])
    page = desktop.get(live.url("/auth/scan")).text
    assert "关注公众号登录" in page and page.index('id="scan-qr"') < page.index("scan-follow-qr")
    link, status = start(live, desktop)
    code = follow_code(emu)
    delivery, replied = scan(emu, code, "zhangsan")
    assert delivery["event"] == "SCAN" and "点此确认在电脑上登录" in delivery["reply"]
    assert replied == link
    assert row(app, link)["scanned_openid"] == delivery["openid"]
    # The scan alone logs nobody in: the desktop waits for the phone's confirmation.
    assert desktop.get(status).json() == {"state": "scanned"}
    assert desktop.get(live.url("/auth/bind"), allow_redirects=False).status_code != 200
    confirmed = confirm(phone_of(live, "zhangsan"), replied)
    assert confirmed.status_code == 200 and "已确认登录" in confirmed.text
    assert desktop.get(status).json() == {"state": "done", "next": "/me"}
    assert desktop.get(live.url("/auth/bind"), allow_redirects=False).status_code == 200


def test_a_new_follower_subscribes_through_the_code(site, emu, desktop):
    app, live = site
    emu.set_follows("lisi", [])
    phone = phone_of(live, "lisi", scope="snsapi_userinfo", next="/me")
    assert "未关注" in phone.get("/me").text
    link, status = start(live, desktop)
    delivery, replied = scan(emu, follow_code(emu), "lisi")
    assert delivery["event"] == "subscribe"
    assert re.search(r"<EventKey><!\[CDATA\[qrscene_login_", delivery["xml"])
    assert replied == link
    assert "已关注" in phone.get("/me").text
    assert confirm(phone, replied).status_code == 200
    assert desktop.get(status).json()["state"] == "done"


@pytest.mark.parametrize("mode", ["safe"], indirect=True)
def test_a_replayed_scan_is_applied_once(site, emu, desktop):
    app, live, link, status = shown(site, emu, desktop)
    delivery, replied = scan(emu, follow_code(emu), "zhangsan")
    before = deliveries(app)
    confirm(phone_of(live, "zhangsan"), replied)
    replay = emu.push_replay(delivery["id"])
    assert replay["accepted"] and replay["answer"] == "success" and not replay["reply"]
    assert deliveries(app) == before
    assert row(app, link)["state"] == "confirmed"  # not marked scanned again
    assert desktop.get(status).json()["state"] == "done"


@pytest.mark.parametrize("mode", ["safe"], indirect=True)
def test_an_expired_or_unknown_code_changes_nothing(site, emu, desktop):
    app, live, link, status = shown(site, emu, desktop)
    code = follow_code(emu)
    # The site's ticket is past its two minutes; WeChat's code still scans (its clock).
    app.config["WXSITE_CLOCK"] = lambda: time.time() + LIFETIME + 1
    delivery = emu.scan(code["ticket"], "zhangsan")["delivery"]
    assert delivery["accepted"] and delivery["answer"] == "success" and not delivery["reply"]
    stored = row(app, link)
    assert stored["state"] == "pending" and stored["scanned_openid"] is None
    assert desktop.get(status).json() == {"state": "expired"}
    unknown = emu.push_event("SCAN", user="zhangsan", event_key="login_" + "x" * 24)
    assert unknown["accepted"] and unknown["answer"] == "success" and not unknown["reply"]


@pytest.mark.parametrize("mode", ["safe"], indirect=True)
def test_another_wechat_user_cannot_confirm_a_scanned_code(site, emu, desktop):
    app, live, link, status = shown(site, emu, desktop)
    _, replied = scan(emu, follow_code(emu), "zhangsan")
    # The link forwarded to someone else: the existing refusal, on the page and the POST.
    other = phone_of(live, "lisi")
    page = other.session.get(replied)
    assert "二维码已失效" in page.text and "scan-confirm" not in page.text
    token = csrf_token(other.get("/auth/bind").text)
    refused = other.session.post(f"{replied}/confirm", data={"csrf_token": token})
    assert refused.status_code == 409 and "二维码已失效" in refused.text
    # Nor can lisi take the scanned ticket over by scanning the code too.
    emu.set_follows("lisi", [APPID])
    assert scan(emu, follow_code(emu), "lisi")[1] is None
    assert row(app, link)["state"] == "scanned"
    assert desktop.get(status).json() == {"state": "scanned"}
    assert confirm(phone_of(live, "zhangsan"), replied).status_code == 200
    assert desktop.get(status).json()["state"] == "done"


@pytest.mark.parametrize("mode", ["safe"], indirect=True)
def test_a_failing_qrcode_create_falls_back_to_the_link_code(site, emu, desktop, caplog):
    app, live = site
    emu.fault(protocol.QRCODE_CREATE, errcode=protocol.API_UNAUTHORIZED)
    with caplog.at_level(logging.WARNING, logger="wxsite.auth"):
        page = desktop.get(live.url("/auth/scan"))
    assert page.status_code == 200 and "用手机微信扫码登录" in page.text
    assert "关注公众号登录" not in page.text and "scan-follow-qr" not in page.text
    lines = [r for r in caplog.records if "follow-to-log-in" in r.getMessage()]
    assert len(lines) == 1 and "48001" in lines[0].getMessage()
    # The link code still works as ever.
    link, status = start(live, desktop)
    assert row(app, link)["scene"] is not None  # (the fault was for one call only)
    assert confirm(phone_of(live, "zhangsan"), link).status_code == 200
    assert desktop.get(status).json()["state"] == "done"


def test_push_off_shows_only_the_link_code(live, emu, desktop):
    link, _ = start(live, desktop)
    page = desktop.get(live.url("/auth/scan")).text
    assert "关注公众号登录" not in page and "scan-follow-qr" not in page
    assert emu.count(protocol.QRCODE_CREATE) == 0
