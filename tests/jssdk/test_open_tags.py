"""Open tags (开放标签): openTagList beside jsApiList, and /share's 「打开小程序」 with its fallback."""

import json
import re

import pytest
import requests

from support import DESKTOP_UA, LiveServer, site_config, wechat_login
from wxsite import create_app

WEAPP = "gh_0123456789ab"


def embedded_config(html):
    match = re.search(r'<script type="application/json" id="wx-config">(.*?)</script>', html, re.S)
    assert match, "page has no #wx-config"
    return json.loads(match.group(1))


def verify(emu, config, url):
    return requests.post(emu.base_url + "/_emu/jssdk/verify", json={**config, "url": url}).json()


def test_jssdk_config_takes_open_tags_beside_apis(logged_in, live, emu):
    url = live.url("/share?x=1")
    ok = logged_in.get(
        live.url("/jssdk/config"), params={"url": url, "tags": "wx-open-launch-weapp"}
    )
    assert ok.status_code == 200
    assert ok.json()["openTagList"] == ["wx-open-launch-weapp"]
    assert verify(emu, ok.json(), url) == {"ok": True}  # not part of the signature
    plain = logged_in.get(live.url("/jssdk/config"), params={"url": url}).json()
    assert "openTagList" not in plain


@pytest.mark.parametrize("tags", ["wx-open-launch-evil", "wx-open-subscribe,script", ","])
def test_unknown_open_tags_are_refused_with_400(logged_in, live, tags):
    refused = logged_in.get(
        live.url("/jssdk/config"), params={"url": live.url("/share"), "tags": tags}
    )
    if tags == ",":
        assert refused.status_code == 200  # empty names are dropped, as for apis
        return
    assert refused.status_code == 400
    assert refused.json()["error"] == "unknown_tag"


@pytest.fixture
def weapp_live(tmp_path, emu):
    app = create_app(
        site_config(tmp_path, emu, WXSITE_WEAPP_USERNAME=f"{WEAPP}:pages/index/index?from=share")
    )
    server = LiveServer(app)
    yield server
    server.shutdown()


def test_share_shows_the_open_tag_in_wechat_with_its_fallback(phone, weapp_live, emu):
    wechat_login(phone, weapp_live)
    html = phone.get(weapp_live.url("/share")).text
    config = embedded_config(html)
    assert config["openTagList"] == ["wx-open-launch-weapp"]
    assert config["jsApiList"] == ["updateAppMessageShareData", "updateTimelineShareData"]
    assert verify(emu, config, weapp_live.url("/share")) == {"ok": True}
    assert (
        f'<wx-open-launch-weapp id="weapp-launch" username="{WEAPP}" '
        'path="pages/index/index?from=share">' in html
    )
    assert '<script type="text/wxtag-template"><button' in html and "打开小程序" in html
    assert 'id="weapp-fallback" hidden' in html


def test_share_has_no_open_tag_unless_configured(logged_in, live):
    html = logged_in.get(live.url("/share")).text
    assert "wx-open-launch-weapp" not in html
    assert "openTagList" not in embedded_config(html)


def test_share_has_no_open_tag_outside_wechat(tmp_path, emu):
    app = create_app(site_config(tmp_path, emu, WXSITE_WEAPP_USERNAME=WEAPP))
    server = LiveServer(app)
    try:
        desktop = requests.Session()
        desktop.headers["User-Agent"] = DESKTOP_UA
        wechat_login(desktop, server)  # emulator mode lets any browser log in (and be WeChat)
        assert "wx-open-launch-weapp" in desktop.get(server.url("/share")).text
        # A desktop browser outside emulator mode (e.g. logged in by scanning): no tag.
        app.config["WX_EMULATOR"] = False
        response = desktop.get(server.url("/share"))
        assert response.status_code == 200
        assert "wx-open-launch-weapp" not in response.text
        assert "openTagList" not in embedded_config(response.text)
    finally:
        server.shutdown()
