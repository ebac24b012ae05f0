"""Voice notes: AMR from media/get, high-quality speex from media/get/jssdk, playable MP3."""

import shutil

import pytest

from media_helpers import amr_bytes, image_bytes, json_poster, stored_files
from wxsite.wechat import protocol


@pytest.fixture
def post_json(logged_in, live):
    return json_poster(logged_in, live)


def test_voice_both_ways_and_playable(logged_in, live, emu, post_json, app):
    media_id = emu.upload_media(amr_bytes(3), "audio/amr", kind="voice")
    response = post_json("/voice", {"server_id": media_id})
    assert response.status_code == 200, response.text
    item = response.json()["item"]
    assert item["status"] == "ok" and item["duration"] == pytest.approx(3.0)
    assert emu.count(protocol.MEDIA_GET) == 1 and emu.count(protocol.MEDIA_GET_JSSDK) == 1
    page = logged_in.get(live.url("/voice")).text
    assert "语音 3 秒" in page
    amr = logged_in.get(live.url(item["url"]))
    assert amr.content.startswith(b"#!AMR\n") and "attachment" in amr.headers["Content-Disposition"]
    # The emulator's media/get/jssdk bytes are a stand-in, not speex: not kept, not offered
    # (test_speex.py covers real speex); ?v=hq then falls back to the AMR.
    assert "高清原始语音" not in page and "高清</span>" not in page
    assert logged_in.get(live.url(item["url"] + "?v=hq")).content == amr.content
    assert not [f for f in stored_files(app, "voice") if f.endswith(".speex")]
    if shutil.which("ffmpeg"):
        assert item["play_url"]
        mp3 = logged_in.get(live.url(item["play_url"]))
        assert mp3.headers["Content-Type"] == "audio/mpeg" and len(mp3.content) > 100
        assert "<audio controls" in page


def test_voice_without_high_quality_copy(logged_in, live, emu, post_json):
    media_id = emu.upload_media(amr_bytes(1), "audio/amr", kind="voice")
    emu.fault(protocol.MEDIA_GET_JSSDK, errcode=protocol.INVALID_MEDIA_ID)
    item = post_json("/voice", {"server_id": media_id}).json()["item"]
    assert item["status"] == "ok"
    assert "高清原始语音" not in logged_in.get(live.url("/voice")).text


def test_expired_voice_is_a_clear_error(post_json, emu):
    response = post_json("/voice", {"server_id": "gone0voice0id"})
    assert response.status_code == 400 and response.json()["error"] == "media_expired"


def test_image_posted_as_voice_is_refused(post_json, emu, app):
    media_id = emu.upload_media(image_bytes())
    response = post_json("/voice", {"server_id": media_id})
    assert response.status_code == 400 and response.json()["error"] == "not_voice"
    assert stored_files(app, "voice") == []


def test_wechat_down_is_503(post_json, emu):
    media_id = emu.upload_media(amr_bytes(1), "audio/amr", kind="voice")
    emu.fault(protocol.MEDIA_GET, status=502, count=-1)
    response = post_json("/voice", {"server_id": media_id})
    assert response.status_code == 503 and "微信服务暂时不可用" in response.json()["message"]


def test_duplicate_voice(post_json, emu, app):
    data = amr_bytes(1)
    first = post_json(
        "/voice", {"server_id": emu.upload_media(data, "audio/amr", kind="voice")}
    ).json()["item"]
    second = post_json(
        "/voice", {"server_id": emu.upload_media(data, "audio/amr", kind="voice")}
    ).json()["item"]
    assert second["status"] == "duplicate" and second["id"] == first["id"]
    assert len([f for f in stored_files(app, "voice") if f.endswith(".amr")]) == 1


def test_bad_bodies(post_json):
    for body in ({}, {"server_id": 5}, []):
        assert post_json("/voice", body).status_code == 400
    assert post_json("/voice", {"server_id": "../x"}).json()["error"] == "invalid_media_id"
