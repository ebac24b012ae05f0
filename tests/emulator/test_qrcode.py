"""Parametric QR codes: qrcode/create, showqrcode, scanning as a fake user, the home page."""

from urllib.parse import quote, urlsplit
from xml.etree import ElementTree

import pytest

from wxsite.emulator.state import QRCODE_CREATE, SHOWQRCODE

from .conftest import APPID
from .receiver import Receiver

TOKEN = "emuPushToken1"


def create(emulator, body, token=None):
    token = token or emulator.token()
    return emulator.post(QRCODE_CREATE, params={"access_token": token}, json=body).json()


def str_scene(scene, action="QR_STR_SCENE", **extra):
    return {"action_name": action, "action_info": {"scene": {"scene_str": scene}}, **extra}


def fields(xml):
    return {child.tag: child.text or "" for child in ElementTree.fromstring(xml)}


@pytest.fixture
def receiver(emulator):
    running = Receiver().start()
    emulator.control.push_config(running.url, TOKEN, timeout=2, retry_delay=0.01)
    yield running
    running.stop()


def test_temporary_code(emulator):
    body = create(emulator, str_scene("login-abc", expire_seconds=600))
    assert list(body) == ["ticket", "expire_seconds", "url"]
    assert body["expire_seconds"] == 600
    assert body["ticket"].startswith("gQ") and body["ticket"].endswith("=")
    assert urlsplit(body["url"]).path.startswith("/_emu/q/")
    assert emulator.control.counters()[QRCODE_CREATE] == 1


def test_temporary_code_defaults_to_60_seconds_and_caps_at_30_days(emulator):
    assert create(emulator, {**str_scene("a")})["expire_seconds"] == 60
    assert create(emulator, str_scene("a", expire_seconds=10**9))["expire_seconds"] == 2592000
    body = {"action_name": "QR_SCENE", "action_info": {"scene": {"scene_id": 123}}}
    assert create(emulator, body)["expire_seconds"] == 60


def test_permanent_code_has_no_expiry_and_is_the_same_code(emulator):
    token = emulator.token()
    first = create(emulator, str_scene("home", "QR_LIMIT_STR_SCENE"), token)
    assert "expire_seconds" not in first
    assert create(emulator, str_scene("home", "QR_LIMIT_STR_SCENE"), token) == first
    other = create(emulator, str_scene("away", "QR_LIMIT_STR_SCENE"), token)
    assert other["ticket"] != first["ticket"]


@pytest.mark.parametrize(
    "body, errcode",
    [
        ({"action_name": "QR_FOO", "action_info": {"scene": {"scene_id": 1}}}, 40097),
        ({"action_name": "QR_SCENE", "action_info": {"scene": {"scene_str": "x"}}}, 40053),
        ({"action_name": "QR_SCENE", "action_info": {"scene": {"scene_id": 0}}}, 40053),
        ({"action_name": "QR_LIMIT_SCENE", "action_info": {"scene": {"scene_id": 100001}}}, 40053),
        ({"action_name": "QR_STR_SCENE", "action_info": {"scene": {"scene_str": "x" * 65}}}, 40053),
        ({"action_name": "QR_STR_SCENE"}, 40053),
        (str_scene("a", expire_seconds="60"), 47001),
        (str_scene("a", expire_seconds=0), 40097),
    ],
)
def test_bad_requests_get_wechats_errcodes(emulator, body, errcode):
    assert create(emulator, body)["errcode"] == errcode


def test_needs_a_global_token(emulator):
    r = emulator.post(QRCODE_CREATE, json=str_scene("a"))
    assert r.json()["errcode"] == 41001
    r = emulator.post(QRCODE_CREATE, params={"access_token": "nope"}, json=str_scene("a"))
    assert r.json()["errcode"] == 40001
    r = emulator.post(QRCODE_CREATE, params={"access_token": emulator.token()}, data=b"{")
    assert r.json()["errcode"] == 47001


def test_showqrcode_serves_a_png_until_expiry(emulator):
    ticket = create(emulator, str_scene("a", expire_seconds=30))["ticket"]
    r = emulator.get(f"{SHOWQRCODE}?ticket={quote(ticket, safe='')}")
    assert r.status_code == 200 and r.headers["Content-Type"] == "image/png"
    assert r.content.startswith(b"\x89PNG\r\n\x1a\n")
    emulator.control.advance(31)
    assert emulator.get(SHOWQRCODE, params={"ticket": ticket}).status_code == 404
    assert emulator.get(SHOWQRCODE, params={"ticket": "gQnope"}).status_code == 404


def test_non_follower_scans_subscribe_with_qrscene_and_follows(emulator, receiver):
    ticket = emulator.control.qrcode("bind-7", expire_seconds=300)["ticket"]
    result = emulator.control.scan(ticket, "lisi")
    assert result["event"] == "subscribe" and result["event_key"] == "qrscene_bind-7"
    got = fields(receiver.posts()[-1].body)
    assert got["Event"] == "subscribe" and got["EventKey"] == "qrscene_bind-7"
    assert got["Ticket"] == ticket
    users = emulator.control.users()
    assert APPID in users["lisi"]["follows"]
    info = emulator.get(
        "/cgi-bin/user/info",
        params={"access_token": emulator.token(), "openid": users["lisi"]["openids"][APPID]},
    ).json()
    assert info["subscribe"] == 1 and info["qr_scene_str"] == "bind-7"


def test_follower_scans_scan_with_the_bare_scene(emulator, receiver):
    ticket = emulator.control.qrcode(321, action_name="QR_LIMIT_SCENE")["ticket"]
    result = emulator.control.scan(ticket, "zhangsan")
    assert result["event"] == "SCAN" and result["event_key"] == "321"
    got = fields(receiver.posts()[-1].body)
    assert (got["Event"], got["EventKey"], got["Ticket"]) == ("SCAN", "321", ticket)
    assert result["delivery"]["accepted"]


def test_expired_or_unknown_ticket_cannot_be_scanned(emulator, receiver):
    ticket = emulator.control.qrcode("late", expire_seconds=10)["ticket"]
    emulator.control.advance(11)
    r = emulator.post("/_emu/qrcode/scan", json={"ticket": ticket, "user": "lisi"})
    assert r.status_code == 400 and r.json()["error"] == "ticket expired"
    r = emulator.post("/_emu/qrcode/scan", json={"ticket": "gQx", "user": "lisi"})
    assert r.status_code == 400
    assert receiver.posts() == [] and APPID not in emulator.control.users()["lisi"]["follows"]


def test_scan_without_push_still_follows(emulator):
    ticket = emulator.control.qrcode("quiet")["ticket"]
    result = emulator.control.scan(ticket, "lisi")
    assert result["delivery"] is None and result["event"] == "subscribe"


def test_codes_are_listed(emulator):
    ticket = emulator.control.qrcode("listed")["ticket"]
    (code,) = emulator.control.qrcodes()
    assert code["ticket"] == ticket and code["scene"] == "listed" and not code["expired"]


def test_scan_page_lists_users_and_scans(emulator, receiver):
    url = emulator.control.qrcode("page")["url"]
    page = emulator.get(urlsplit(url).path)
    assert page.status_code == 200 and 'data-user="lisi"' in page.text
    assert 'name="viewport"' in page.text
    r = emulator.post(urlsplit(url).path, data={"user": "lisi"})
    assert r.status_code == 303 and "notice=" in r.headers["Location"]
    assert fields(receiver.posts()[-1].body)["EventKey"] == "qrscene_page"
    assert emulator.get("/_emu/q/nothing").status_code == 404


def test_home_page_buttons(emulator, receiver):
    page = emulator.get("/_emu/").text
    assert 'id="wxemu-follow-lisi-1"' in page and 'id="wxemu-unfollow-zhangsan-1"' in page
    form = {"user": "lisi", "appid": APPID, "action": "follow"}
    r = emulator.post("/_emu/web/follow", data=form)
    assert r.status_code == 303 and "#user-lisi" in r.headers["Location"]
    assert fields(receiver.posts()[-1].body)["Event"] == "subscribe"
    emulator.post("/_emu/web/qrcode", data={"appid": APPID, "scene": "desk"})
    ticket = emulator.control.qrcodes()[-1]["ticket"]
    emulator.post("/_emu/web/scan", data={"ticket": ticket, "user": "lisi"})
    assert fields(receiver.posts()[-1].body)["Event"] == "SCAN"
    emulator.post("/_emu/web/text", data={"user": "lisi", "appid": APPID, "content": "hi"})
    assert fields(receiver.posts()[-1].body)["Content"] == "hi"
    r = emulator.post("/_emu/web/verify", data={"appid": APPID})
    assert "echoed" in r.headers["Location"]
    page = emulator.get(r.headers["Location"]).text
    assert 'id="wxemu-notice"' in page and "scan as" in page and "#3 text" in page
    assert emulator.post("/_emu/web/follow", data={"user": "x", "appid": APPID}).status_code == 400
