"""Follow to log in, in two real browsers: the desktop shows the account's parametric code
beside the link code; WeChat (the emulator) pushes the scan to the site, whose reply carries
the confirm link; the phone opens it, the desktop page follows each step."""

import os
import re

import pytest

from stack import Stack, phone_context
from support import ARTIFACTS, DESKTOP_UA, EmulatorControl
from test_scenarios import pick_user
from wxsite.wechat import protocol

TOKEN = "browserfollowtoken"


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    running = Stack("direct", tmp_path_factory.mktemp("follow"), env={"WX_PUSH_TOKEN": TOKEN})
    emu = EmulatorControl(running.emulator.base_url)
    emu.push_config(running.url("/wechat/push"), TOKEN, None, "plaintext", retry_delay=0.05)
    yield running, emu
    running.stop()


def test_scanning_the_follow_code_then_confirming_on_the_phone(site, browser):
    stack, emu = site
    emu.set_follows("lisi", [])  # not yet a follower: the scan subscribes
    desktop = browser.new_context(user_agent=DESKTOP_UA, viewport={"width": 1280, "height": 800})
    page = desktop.new_page()
    problems = []
    page.on("pageerror", lambda exc: problems.append(str(exc)))
    page.goto(stack.url("/auth/scan?next=/"))
    page.wait_for_selector("#scan-follow-qr svg")
    assert "关注公众号登录" in page.inner_text("#scan-follow")

    code = emu.qrcodes()[-1]
    assert code["action_name"] == "QR_STR_SCENE"
    delivery = emu.scan(code["ticket"], "lisi")["delivery"]
    assert delivery["accepted"] and delivery["event"] == "subscribe", delivery
    link = re.search(r'href="([^"]+)"', delivery["reply"]).group(1)
    # The desktop's poll sees the scan: it now waits for the phone.
    page.wait_for_function(
        "() => document.getElementById('scan-state').textContent.includes('已扫码')"
    )
    # Spent for anyone else: both codes are dimmed while the phone confirms.
    assert page.eval_on_selector_all(
        ".qr", "els => els.map(e => e.classList.contains('qr-dim'))"
    ) == [True, True]
    os.makedirs(ARTIFACTS, exist_ok=True)
    page.screenshot(path=os.path.join(ARTIFACTS, "scan-follow-scanned.png"), full_page=True)

    phone = phone_context(browser)
    mobile = phone.new_page()
    mobile.goto(link)
    pick_user(mobile, "lisi")
    mobile.wait_for_selector("#scan-confirm")
    mobile.click("#scan-confirm")
    mobile.wait_for_selector("#scan-result")
    assert "已确认登录" in mobile.inner_text("#scan-result")

    page.wait_for_url(re.compile(r".*/$"))
    page.wait_for_selector('a[href="/me"] .cell-body')
    assert problems == []
    assert emu.count(protocol.QRCODE_CREATE) >= 1
    phone.close()
    desktop.close()
