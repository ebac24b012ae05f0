"""A ticket WeChat stopped honouring (RELIABILITY 62), in headless Chromium.

The emulator forgets its tickets (as after a restart of `make run`, or WeChat dropping a
ticket early) while the site's workers keep theirs. The page's wx.error reports it, the
site fetches one new ticket for all its workers, and the page retries wx.config once.
"""

import re

import pytest
import requests

from stack import EmulatorProcess, Gunicorn
from support import WECHAT_UA


@pytest.fixture
def site(tmp_path):
    emulator = EmulatorProcess()
    gunicorn = Gunicorn(str(tmp_path), emulator.base_url, workers=4)
    yield emulator, gunicorn
    gunicorn.stop()
    emulator.stop()


def pick_user(page, user="zhangsan"):
    page.wait_for_selector("#wxemu-authorize")
    page.check(f'input[name="user"][value="{user}"]')
    page.click("#wxemu-allow")


def settled(page):
    page.wait_for_function(
        "() => window.wxsite && (window.wxsite.state.ready || window.wxsite.state.error)"
    )


def test_the_page_reports_a_refused_ticket_and_retries_once(browser, site):
    emulator, gunicorn = site
    emu = requests.Session()

    def counters():
        return emu.get(emulator.base_url + "/_emu/counters").json()

    def configs():
        return [
            e for e in emu.get(emulator.base_url + "/_emu/events").json() if e["api"] == "config"
        ]

    ctx = browser.new_context(
        user_agent=WECHAT_UA, viewport={"width": 390, "height": 844}, is_mobile=True
    )
    try:
        page = ctx.new_page()
        problems = []
        page.on("pageerror", lambda exc: problems.append(str(exc)))
        page.goto(gunicorn.base_url + "/share")
        pick_user(page)
        page.wait_for_url(re.compile(r".*/share(#.*)?$"))
        settled(page)
        assert page.evaluate("window.wxsite.state.error") is None

        # The emulator forgets every token and ticket; the site's workers still hold theirs.
        emu.post(emulator.base_url + "/_emu/reset").raise_for_status()
        page.reload()
        settled(page)
        assert page.evaluate("window.wxsite.state.error") is None, page.inner_text("#wx-banner")
        assert page.evaluate("window.__wxemu.ready") is True
        assert [e["ok"] for e in configs()] == [False, True]  # refused, reported, retried
        assert page.is_hidden("#wx-banner") or page.query_selector("#wx-banner") is None
        assert counters()["/cgi-bin/ticket/getticket"] == 2  # the dead token's 40001, a new one
        assert counters()["/cgi-bin/stable_token"] == 1

        # Every later page view works, whichever worker renders it, with no new fetch.
        for _ in range(6):
            page.reload()
            settled(page)
            assert page.evaluate("window.wxsite.state.error") is None
        assert counters()["/cgi-bin/ticket/getticket"] == 2

        # When a retry cannot help (WeChat refuses every signature), one try, then the banner.
        emu.post(
            emulator.base_url + "/_emu/faults",
            json={
                "path": "/_emu/jssdk/verify",
                "count": -1,
                "body": '{"ok": false, "errMsg": "config:invalid signature"}',
            },
        ).raise_for_status()
        emu.delete(emulator.base_url + "/_emu/events")
        page.reload()
        page.wait_for_selector("#wx-banner:not([hidden])")
        assert "签名无效" in page.inner_text("#wx-banner")
        assert page.inner_text("#share-status") == "微信功能暂不可用"
        assert len(configs()) <= 2  # at most one retry
        assert counters()["/cgi-bin/ticket/getticket"] == 2  # reports spent no quota
        assert problems == []
    finally:
        ctx.close()
