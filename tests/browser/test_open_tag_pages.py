"""/share's 「打开小程序」 open tag in headless Chromium: granted, and its fallback when not."""

import re

import pytest

from stack import EmulatorProcess, Gunicorn, watched_page
from support import WECHAT_UA

WEAPP = "gh_0123456789ab"
#: Wrap the fake JS-SDK's wx.config as it is installed, to call it without openTagList.
UNGRANT = """
(() => {
  let installed;
  Object.defineProperty(window, 'wx', {
    configurable: true,
    get() { return installed; },
    set(sdk) {
      const config = sdk.config;
      sdk.config = (options) => { delete options.openTagList; return config(options); };
      installed = sdk;
    },
  });
})();
"""


class WeappStack:
    """The emulator and the site with WXSITE_WEAPP_USERNAME set (straight to gunicorn)."""

    def __init__(self, workdir):
        import requests

        self.emulator = EmulatorProcess()
        env = {"WXSITE_WEAPP_USERNAME": f"{WEAPP}:pages/index/index"}
        self.site = Gunicorn(str(workdir), self.emulator.base_url, workers=2, env=env)
        self.base_url = self.site.base_url
        self.emu = requests.Session()

    def url(self, path):
        return self.base_url + path

    def events(self):
        return self.emu.get(self.emulator.base_url + "/_emu/events").json()

    def stop(self):
        self.site.stop()
        self.emulator.stop()


@pytest.fixture(scope="module")
def weapp_stack(tmp_path_factory):
    running = WeappStack(tmp_path_factory.mktemp("weapp"))
    yield running
    running.stop()


@pytest.fixture
def tab(browser):
    ctx = browser.new_context(user_agent=WECHAT_UA, viewport={"width": 390, "height": 844})
    page = watched_page(ctx)
    yield page
    ctx.close()


def open_share(page, stack):
    page.goto(stack.url("/share"))
    page.wait_for_selector("#wxemu-authorize")
    page.check('input[name="user"][value="zhangsan"]')
    page.click("#wxemu-allow")
    page.wait_for_url(re.compile(r".*/share(#.*)?$"))
    page.wait_for_function("() => window.__wxemu && (window.__wxemu.ready || window.__wxemu.error)")


def tag_events(stack):
    return [e for e in stack.events() if e["api"].startswith("openTag")]


def test_a_granted_open_tag_renders_and_launches(tab, weapp_stack):
    open_share(tab, weapp_stack)
    tab.wait_for_function("() => document.getElementById('weapp-launch').shadowRoot")
    button = tab.locator("#weapp-launch button")  # Playwright pierces the shadow root
    assert button.inner_text() == "打开小程序"
    assert tab.locator("#weapp-fallback").is_hidden()
    button.click()
    tab.wait_for_selector("#wxemu-toast")
    events = tag_events(weapp_stack)
    assert [(e["api"], e["ok"]) for e in events] == [("openTag", True), ("openTag:launch", True)]
    assert events[-1]["args"] == {
        "tag": "wx-open-launch-weapp",
        "username": WEAPP,
        "path": "pages/index/index",
    }
    assert tab.problems == []


def test_an_open_tag_not_granted_fires_the_error_and_shows_the_fallback(tab, weapp_stack):
    open_share(tab, weapp_stack)  # logged in; now the same page with no open tag granted
    weapp_stack.emu.delete(weapp_stack.emulator.base_url + "/_emu/events")
    # openTagList is not signed: dropping it keeps wx.config valid but grants no tag. (A
    # route rewriting the HTML would make Chromium treat the page as public and block the
    # loopback emulator's script, so wx.config itself is wrapped.)
    tab.add_init_script(UNGRANT)
    tab.goto(weapp_stack.url("/share"))
    tab.wait_for_function("() => window.__wxemu && (window.__wxemu.ready || window.__wxemu.error)")
    tab.wait_for_selector("#weapp-fallback", state="visible")
    assert "原始 ID" in tab.inner_text("#weapp-fallback")
    assert tab.locator("#weapp-launch").is_hidden()
    assert "openTagList" in tab.get_attribute("#weapp-fallback", "data-err")
    assert tab.evaluate("window.__wxemu.ready") is True  # the rest of the JS-SDK still works
    tab.wait_for_selector("#share-status.toast")
    events = tag_events(weapp_stack)
    assert [(e["api"], e["ok"]) for e in events] == [("openTag", False)]
    assert tab.problems == []
