"""Desktop login by scanning (``/auth/scan``): one-time, two minutes, bound to the desktop
browser that asked, decided on the phone with a POST (issue 14 item 3)."""

import re

import pytest
import requests

from support import DESKTOP_UA, csrf_token, wechat_login
from wxsite import store


def desktop_browser():
    browser = requests.Session()
    browser.headers["User-Agent"] = DESKTOP_UA
    return browser


def start(live, browser, next="/me"):
    """Open the desktop page; return (phone link in the QR code, status URL)."""
    page = browser.get(live.url("/auth/scan"), params={"next": next})
    assert page.status_code == 200 and "用手机微信扫码登录" in page.text
    status = re.search(r'data-status-url="([^"]+)"', page.text).group(1)
    ticket = status.split("/")[-2]
    return live.url(f"/auth/scan/{ticket}"), live.url(status)


def decide(phone, link, decision="confirm"):
    page = phone.get(link)
    assert "在电脑上登录" in page.text, page.text[:300]
    return phone.post(f"{link}/{decision}", data={"csrf_token": csrf_token(page.text)})


@pytest.fixture
def desktop():
    return desktop_browser()


def test_scan_confirm_logs_the_desktop_in_as_the_phone(app, live, logged_in, desktop):
    link, status = start(live, desktop)
    assert desktop.get(status).json() == {"state": "pending"}
    phone_page = logged_in.get(link)
    assert "Linux 上的 Chrome" in phone_page.text
    confirmed = decide(logged_in, link)
    assert confirmed.status_code == 200 and "已确认登录" in confirmed.text
    answer = desktop.get(status).json()
    assert answer == {"state": "done", "next": "/me"}
    # The desktop now holds its own login, as the phone's person.
    assert desktop.get(live.url("/auth/bind"), allow_redirects=False).status_code == 200
    # Single use: the login rotated the session, so nothing can redeem the code again.
    assert desktop.get(status).status_code == 403
    assert desktop.cookies.get("wxsite_session") != logged_in.cookies.get("wxsite_session")


def test_another_browser_cannot_redeem_the_code(live, logged_in, desktop):
    link, status = start(live, desktop)
    decide(logged_in, link)
    thief = desktop_browser()
    thief.get(live.url("/"))
    assert thief.get(status).status_code == 403
    assert thief.get(live.url("/auth/bind"), allow_redirects=False).status_code != 200
    assert desktop.get(status).json()["state"] == "done"  # the asking browser still can


def test_cancel_on_the_phone(live, logged_in, desktop):
    link, status = start(live, desktop)
    assert "已取消" in decide(logged_in, link, "cancel").text
    assert desktop.get(status).json() == {"state": "cancelled"}
    assert desktop.get(live.url("/auth/bind"), allow_redirects=False).status_code != 200


def test_a_replayed_confirm_is_refused(live, logged_in, desktop):
    link, status = start(live, desktop)
    page = logged_in.get(link)
    token = csrf_token(page.text)
    assert logged_in.post(f"{link}/confirm", data={"csrf_token": token}).status_code == 200
    again = logged_in.post(f"{link}/confirm", data={"csrf_token": token})
    assert again.status_code == 409 and "二维码已失效" in again.text
    assert "二维码已失效" in logged_in.get(link).text


def test_an_expired_code_offers_a_new_one(app, live, logged_in, desktop):
    link, status = start(live, desktop)
    with app.app_context():
        store.get_db().execute("UPDATE scan_logins SET expires_at = 0")
    assert desktop.get(status).json() == {"state": "expired"}
    assert "二维码已失效" in logged_in.get(link).text
    token = csrf_token(logged_in.get(live.url("/auth/bind")).text)
    assert logged_in.post(f"{link}/confirm", data={"csrf_token": token}).status_code == 409


def test_confirm_needs_csrf_and_post(live, logged_in, desktop):
    link, _ = start(live, desktop)
    assert logged_in.post(f"{link}/confirm").status_code == 400
    assert logged_in.get(f"{link}/confirm").status_code == 405


def test_the_phone_must_log_in_first(live, desktop, phone):
    link, status = start(live, desktop)
    first = phone.get(link, allow_redirects=False)
    assert first.status_code == 302 and "/auth/login" in first.headers["Location"]
    wechat_login(phone, live, user="lisi", next=link[len(live.base_url) :])
    decide(phone, link)
    assert desktop.get(status).json()["state"] == "done"


def test_open_in_wechat_page_offers_the_scan_login(tmp_path, emu):
    from support import site_config
    from wxsite import create_app

    site = create_app(site_config(tmp_path, emu, WX_APPID="wx0123456789abcdef", WX_SECRET="s"))
    page = site.test_client().get("/me", headers={"User-Agent": DESKTOP_UA})
    assert "请用微信扫一扫" in page.text
    assert 'href="/auth/scan?next=/me"' in page.text


def test_unknown_or_malformed_tickets_are_404(live, desktop, logged_in):
    assert logged_in.get(live.url("/auth/scan/" + "A" * 32)).status_code == 404
    assert logged_in.get(live.url("/auth/scan/../../etc")).status_code == 404
    assert desktop.get(live.url("/auth/scan/" + "A" * 32 + "/status")).status_code == 404
