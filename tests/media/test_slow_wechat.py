"""A slow or endless WeChat through the site's pages: 503s and refused items, no files left.

RELIABILITY 33 and 47: a 1 byte/s body or one without Content-Length meets the byte cap
and the total deadline; the partial file is deleted.
"""

import time

import pytest

from support import amr_bytes, site_config
from media_helpers import image_bytes, stored_files
from wxsite import create_app
from wxsite.wechat import protocol

DEADLINE = 2.0
#: A made-up media answer far beyond any cap and any socket buffer (generated as sent).
HUGE = 200_000_000
#: Generous: near the deadline, far before the drip would have finished.
ENDED_BY = DEADLINE + 4.0


@pytest.fixture
def app(tmp_path, emu, media_config):
    return create_app(
        site_config(
            tmp_path,
            emu,
            WXSITE_DEADLINE=DEADLINE,
            WXSITE_MEDIA_MAX_BYTES=300_000,
            **media_config,
        )
    )


@pytest.fixture
def site(app, live, emu):
    yield app, live
    # Later tests must not meet a leftover endless drip.
    emu.clear_faults()


def leftovers(app, kind="images"):
    """Everything stored under *kind*, temporary files included (on either store)."""
    return stored_files(app, kind)


def test_dripping_image_download_is_wechat_unavailable_and_leaves_no_file(
    site, emu, logged_in, wechat
):
    app, _ = site
    media_id = emu.upload_media(image_bytes(size=(120, 90)))
    # A few KB at 80 bytes a second, declared with Content-Length: a minute or more.
    emu.fault(protocol.MEDIA_GET, count=-1, drip=0.1, drip_bytes=8)
    started = time.monotonic()
    item = wechat.post_json("/upload", {"server_ids": [media_id]}).json()["items"][0]
    assert time.monotonic() - started < ENDED_BY
    assert item["status"] == "error" and item["error"] == "wechat_unavailable"
    assert leftovers(app) == []
    delivery = emu.settled_delivery(protocol.MEDIA_GET)
    assert delivery["state"] == "cut" and delivery["sent"] < delivery["length"]


def test_dripping_voice_download_is_a_503(site, emu, logged_in, wechat):
    app, _ = site
    media_id = emu.upload_media(amr_bytes(5), "audio/amr", kind="voice")
    emu.fault(protocol.MEDIA_GET, count=-1, drip=0.1, drip_bytes=8)
    started = time.monotonic()
    response = wechat.post_json("/voice", {"server_id": media_id})
    assert time.monotonic() - started < ENDED_BY + DEADLINE  # the speex copy may follow
    assert response.status_code == 503 and response.json()["error"] == "wechat_unavailable"
    assert leftovers(app, "voice") == []


def test_chunked_image_over_the_cap_is_too_large_and_leaves_no_file(site, emu, logged_in, wechat):
    app, _ = site
    media_id = emu.upload_media(image_bytes())
    # No Content-Length: the cap can only be enforced while the bytes come in.
    emu.fault(protocol.MEDIA_GET, chunked=True, size=HUGE)
    item = wechat.post_json("/upload", {"server_ids": [media_id]}).json()["items"][0]
    assert item["status"] == "error" and item["error"] == "too_large" and "过大" in item["message"]
    assert leftovers(app) == []
    delivery = emu.settled_delivery(protocol.MEDIA_GET)
    # Socket buffers (tens of MB on loopback) take some of it, never all of it.
    assert delivery["state"] == "cut" and delivery["sent"] < HUGE / 2, delivery


def test_chunked_image_under_the_cap_is_stored(site, emu, logged_in, wechat):
    app, _ = site
    emu.fault(protocol.MEDIA_GET, chunked=True)
    media_id = emu.upload_media(image_bytes())
    item = wechat.post_json("/upload", {"server_ids": [media_id]}).json()["items"]
    assert item[0]["status"] == "ok" and len(leftovers(app)) == 1


def test_dripping_token_fetch_is_a_503_page(site, emu, wechat):
    wechat.login()
    # /share needs the jsapi_ticket, hence a global access_token nobody has fetched yet.
    emu.fault(protocol.STABLE_TOKEN, count=-1, drip=0.1)
    started = time.monotonic()
    response = wechat.get("/share")
    assert time.monotonic() - started < ENDED_BY
    assert response.status_code == 503 and "微信服务暂时不可用" in response.text
    delivery = emu.settled_delivery(protocol.STABLE_TOKEN)
    assert delivery["state"] == "cut" and delivery["sent"] < delivery["length"]
    # The credential lease was released: once WeChat is well again the page works.
    emu.clear_faults()
    assert wechat.get("/share").status_code == 200
