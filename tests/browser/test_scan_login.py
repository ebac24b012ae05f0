"""Desktop login by scanning in two real browsers: desktop Chromium and a WeChat phone."""

import os
import re

import pytest
from playwright.sync_api import Error as PlaywrightError

from stack import Stack, phone_context
from support import ARTIFACTS, DESKTOP_UA
from test_scenarios import pick_user


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    running = Stack("direct", tmp_path_factory.mktemp("scan"))
    yield running
    running.stop()


@pytest.fixture
def desktop(browser):
    ctx = browser.new_context(user_agent=DESKTOP_UA, viewport={"width": 1280, "height": 800})
    yield ctx
    ctx.close()


@pytest.fixture
def phone(browser):
    ctx = phone_context(browser)
    yield ctx
    ctx.close()


def shoot(page, name):
    os.makedirs(ARTIFACTS, exist_ok=True)
    page.screenshot(path=os.path.join(ARTIFACTS, f"scan-{name}.png"), full_page=True)


def scan_state(site, link):
    """The ticket's state in the site's database."""
    from wxsite import store

    db = store.connect(site.site.env["WXSITE_DATABASE"])
    try:
        return store.get_scan(db, link.rsplit("/", 1)[1])["state"]
    finally:
        db.close()


def open_code(desktop, site):
    page = desktop.new_page()
    problems = []
    page.on("pageerror", lambda exc: problems.append(str(exc)))
    page.goto(site.url("/auth/scan?next=/"))
    page.wait_for_selector("#scan-qr svg")
    status = page.get_attribute("#scan", "data-status-url")
    return page, site.url(status.rsplit("/", 1)[0]), problems


def test_scan_confirm_cancel_foreign_browser_and_replay(site, desktop, phone, browser):
    page, link, problems = open_code(desktop, site)
    shoot(page, "desktop")
    mobile = phone.new_page()
    mobile.goto(link)
    pick_user(mobile, "lisi")  # the phone logs in silently-or-by-consent first
    mobile.wait_for_selector("#scan-confirm")
    assert "Linux 上的 Chrome" in mobile.inner_text("#scan-desktop")
    shoot(mobile, "phone-confirm")
    token = mobile.get_attribute("form[action$='/confirm'] input[name=csrf_token]", "value")

    # Hold the desktop's polls, so that the other desktop tries the code while it is
    # confirmed and not yet redeemed: the strongest moment for a thief.
    held = []
    page.route("**/status", lambda route: held.append(route))
    mobile.click("#scan-confirm")
    mobile.wait_for_selector("#scan-result")
    assert "已确认登录" in mobile.inner_text("#scan-result")
    shoot(mobile, "phone-done")
    assert scan_state(site, link) == "confirmed"

    # Another desktop browser holding the same link cannot redeem the confirmed code.
    thief = browser.new_context(user_agent=DESKTOP_UA).new_page()
    answer = thief.goto(link + "/status")
    assert answer.status == 403 and answer.json() == {"state": "forbidden"}
    assert scan_state(site, link) == "confirmed"  # nothing redeemed
    thief.goto(site.url("/"))
    assert "微信用户" not in thief.content()
    thief.context.close()

    page.unroute("**/status")
    for route in held:
        try:
            route.continue_()
        except PlaywrightError as exc:  # a poll the page gave up on meanwhile
            assert "already handled" in str(exc), exc
    page.wait_for_url(re.compile(r".*/$"))
    # The desktop continues logged in (home shows the person's entry, 微信用户 until the
    # profile is consented), with a session of its own.
    page.wait_for_selector('a[href="/me"] .cell-body')
    assert "微信用户" in page.inner_text('a[href="/me"] .cell-body')
    shoot(page, "desktop-done")
    assert problems == []
    assert scan_state(site, link) == "redeemed"

    # A replayed confirm (the same form, its CSRF token kept, POSTed again) is refused.
    again = mobile.request.post(link + "/confirm", form={"csrf_token": token})
    assert again.status == 409 and "二维码已失效" in again.text()
    mobile.goto(link)
    assert "二维码已失效" in mobile.inner_text(".msg-title")


def test_cancel_on_the_phone_stops_the_desktop(site, desktop, phone):
    page, link, _ = open_code(desktop, site)
    mobile = phone.new_page()
    mobile.goto(link)
    if mobile.query_selector("#wxemu-authorize"):
        pick_user(mobile, "lisi")
    mobile.wait_for_selector("#scan-cancel")
    mobile.click("#scan-cancel")
    mobile.wait_for_selector("#scan-result")
    page.wait_for_selector("#scan-again:not([hidden])")
    assert "已在手机上取消登录" in page.inner_text("#scan-state")
    shoot(page, "desktop-cancelled")


def test_an_expired_code_offers_a_new_one(site, desktop, phone):
    from wxsite import store

    page, link, _ = open_code(desktop, site)
    db = store.connect(site.site.env["WXSITE_DATABASE"])
    try:
        db.execute("UPDATE scan_logins SET expires_at = 0")
    finally:
        db.close()
    page.wait_for_selector("#scan-again:not([hidden])")
    assert "二维码已过期" in page.inner_text("#scan-state")
    mobile = phone.new_page()
    mobile.goto(link)
    if mobile.query_selector("#wxemu-authorize"):
        pick_user(mobile, "lisi")
    mobile.wait_for_selector(".msg-title")
    assert "二维码已失效" in mobile.inner_text(".msg-title")
    page.click("#scan-again")  # a fresh code
    page.wait_for_selector("#scan-qr svg")
    assert page.get_attribute("#scan", "data-status-url") not in link
