"""Voice notes: AMR from media/get, high-quality speex from media/get/jssdk, playable MP3.

The POST stores what WeChat gave and answers at once; the MP3 is made by the
voice.transcode job (a real consumer in the site's threads, see conftest.py).
"""

import shutil

import pytest

from media_helpers import (
    JOBS_ON,
    image_bytes,
    jobs_settled,
    start_jobs,
    stored_files,
)
from support import LiveServer, WeChat, amr_bytes, site_config
from wxsite import create_app, store
from wxsite.wechat import protocol


@pytest.fixture
def held_site(tmp_path, emu, phone, media_config):
    """A site whose job consumer is not started yet (the test starts it): ``(app, live, wechat)``.

    ``wechat`` is ``phone`` logged in there.
    """
    settings = {**JOBS_ON, "WXSITE_JOBS_CONSUMER": "off"}
    app = create_app(site_config(tmp_path, emu, **settings, **media_config))
    live = LiveServer(app)
    wechat = WeChat(live, phone)
    wechat.login()
    yield app, live, wechat
    live.shutdown()


@pytest.mark.skipif(not shutil.which("ffmpeg"), reason="needs ffmpeg")
def test_voice_shows_processing_then_plays(held_site, phone, emu):
    app, live, wechat = held_site
    media_id = emu.upload_media(amr_bytes(2), "audio/amr", kind="voice")
    response = wechat.post_json("/voice", {"server_id": media_id})
    assert response.status_code == 200, response.text
    item = response.json()["item"]
    # Answered before any transcoding: no MP3 yet, the job is queued.
    assert item["play_url"] is None and item["processing"] is True
    page = phone.get(live.url("/voice")).text
    assert "处理中" in page and "<audio" not in page
    assert [f for f in stored_files(app, "voice") if f.endswith(".mp3")] == []
    start_jobs(app)
    (row,) = jobs_settled(app)
    assert (row["key"], row["state"], row["attempts"]) == (
        f"voice.transcode:{item['id']}",
        "done",
        1,
    )
    page = phone.get(live.url("/voice")).text
    assert "处理中" not in page and "<audio controls" in page
    mp3 = phone.get(live.url(f"/uploads/{item['id']}/play"))
    assert mp3.status_code == 200 and mp3.headers["Content-Type"] == "audio/mpeg"
    assert len(mp3.content) > 100
    # Run again (a duplicate message, a retry after a crash): nothing changes.
    from wxsite import jobs

    with app.app_context():
        before = store.upload_row(store.get_db(), item["id"])["playable_path"]
        assert jobs.get(app).enqueue(
            "voice.transcode", {"upload_id": item["id"]}, row["key"], again=True
        )
    jobs_settled(app)
    with app.app_context():
        assert store.upload_row(store.get_db(), item["id"])["playable_path"] == before
    assert len([f for f in stored_files(app, "voice") if f.endswith(".mp3")]) == 1


def test_voice_both_ways_and_playable(logged_in, live, emu, wechat, app):
    media_id = emu.upload_media(amr_bytes(3), "audio/amr", kind="voice")
    response = wechat.post_json("/voice", {"server_id": media_id})
    assert response.status_code == 200, response.text
    item = response.json()["item"]
    assert item["status"] == "ok" and item["duration"] == pytest.approx(3.0)
    assert emu.count(protocol.MEDIA_GET) == 1 and emu.count(protocol.MEDIA_GET_JSSDK) == 1
    jobs_settled(app)
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
        play_url = f"/uploads/{item['id']}/play"
        assert play_url in page
        mp3 = logged_in.get(live.url(play_url))
        assert mp3.headers["Content-Type"] == "audio/mpeg" and len(mp3.content) > 100
        assert "<audio controls" in page


def test_voice_without_high_quality_copy(logged_in, live, emu, wechat):
    media_id = emu.upload_media(amr_bytes(1), "audio/amr", kind="voice")
    emu.fault(protocol.MEDIA_GET_JSSDK, errcode=protocol.INVALID_MEDIA_ID)
    item = wechat.post_json("/voice", {"server_id": media_id}).json()["item"]
    assert item["status"] == "ok"
    assert "高清原始语音" not in logged_in.get(live.url("/voice")).text


def test_expired_voice_is_a_clear_error(logged_in, wechat, emu):
    response = wechat.post_json("/voice", {"server_id": "gone0voice0id"})
    assert response.status_code == 400 and response.json()["error"] == "media_expired"


def test_image_posted_as_voice_is_refused(logged_in, wechat, emu, app):
    media_id = emu.upload_media(image_bytes())
    response = wechat.post_json("/voice", {"server_id": media_id})
    assert response.status_code == 400 and response.json()["error"] == "not_voice"
    assert stored_files(app, "voice") == []


def test_wechat_down_is_503(logged_in, wechat, emu):
    media_id = emu.upload_media(amr_bytes(1), "audio/amr", kind="voice")
    emu.fault(protocol.MEDIA_GET, status=502, count=-1)
    response = wechat.post_json("/voice", {"server_id": media_id})
    assert response.status_code == 503 and "微信服务暂时不可用" in response.json()["message"]


def test_duplicate_voice(logged_in, wechat, emu, app):
    data = amr_bytes(1)
    first = wechat.post_json(
        "/voice", {"server_id": emu.upload_media(data, "audio/amr", kind="voice")}
    ).json()["item"]
    second = wechat.post_json(
        "/voice", {"server_id": emu.upload_media(data, "audio/amr", kind="voice")}
    ).json()["item"]
    assert second["status"] == "duplicate" and second["id"] == first["id"]
    assert [r["key"] for r in jobs_settled(app)] == [f"voice.transcode:{first['id']}"]
    assert len([f for f in stored_files(app, "voice") if f.endswith(".amr")]) == 1


def test_bad_bodies(logged_in, wechat):
    for body in ({}, {"server_id": 5}, []):
        assert wechat.post_json("/voice", body).status_code == 400
    assert wechat.post_json("/voice", {"server_id": "../x"}).json()["error"] == "invalid_media_id"


def test_a_transcode_that_keeps_failing_leaves_the_amr_and_no_500(
    tmp_path, emu, phone, media_config, monkeypatch
):
    from wxsite.media import voice as voice_codec

    monkeypatch.setattr(voice_codec, "transcode", lambda src, dest, timeout=30: False)
    settings = {**JOBS_ON, "WXSITE_JOBS_ATTEMPTS": 2, "WXSITE_JOBS_RETRY_BASE": 0.05}
    app = create_app(site_config(tmp_path, emu, **settings, **media_config))
    live = LiveServer(app)
    try:
        wechat = WeChat(live, phone)
        wechat.login()
        item = wechat.post_json(
            "/voice", {"server_id": emu.upload_media(amr_bytes(1), "audio/amr", "voice")}
        )
        assert item.status_code == 200
        (row,) = jobs_settled(app)
        assert (row["state"], row["attempts"]) == ("failed", 2)
        assert "ffmpeg could not convert" in row["last_error"]
        page = phone.get(live.url("/voice"))
        assert page.status_code == 200 and "未能转换" in page.text and "处理中" not in page.text
        assert "下载 AMR" in page.text
        # Nothing half-made is left: no MP3, no temp copy.
        assert [f.rsplit(".", 1)[-1] for f in stored_files(app, "voice")] == ["amr"]
    finally:
        live.shutdown()
