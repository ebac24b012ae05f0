"""The emulator's own pages on a phone's width: no sideways scroll, the forms work."""

import pytest

from .conftest import APPID, auth_link

pytestmark = pytest.mark.browser


@pytest.fixture
def phone(browser):
    context = browser.new_context(viewport={"width": 360, "height": 740}, device_scale_factor=2)
    yield context
    context.close()


def no_sideways_scroll(page):
    return page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")


def test_pages_fit_a_phone_and_the_buttons_work(phone, emulator):
    emulator.control.qrcode("a-rather-long-scene-string-that-must-wrap-0123456789")
    page = phone.new_page()
    try:
        page.goto(emulator.url("/_emu/"))
        assert no_sideways_scroll(page)
        page.click("#wxemu-follow-lisi-1")
        assert "push is off" in page.text_content("#wxemu-notice")
        assert APPID in emulator.control.users()["lisi"]["follows"]
        assert no_sideways_scroll(page)
        page.click("#qrcodes ~ .wxemu-cells a")
        assert no_sideways_scroll(page)
        page.click("#wxemu-scan-zhouba")
        assert "zhouba scanned: subscribe" in page.text_content("#wxemu-notice")
        page.goto(emulator.url(auth_link()) + "#wechat_redirect")
        assert no_sideways_scroll(page) and page.is_visible("#wxemu-snapshot")
    finally:
        page.close()
