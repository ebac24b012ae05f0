"""Photo upload: the server fetches each serverId from the (emulated) WeChat (RELIABILITY 31–37)."""

import os
import subprocess
import threading

import pytest

from support import WeChat, csrf_token, site_config
from media_helpers import image_bytes, stored_files
from wxsite.wechat import protocol


def test_three_images_stored_and_shown_in_gallery(logged_in, live, emu, wechat, app):
    ids = [
        emu.upload_media(image_bytes(fmt, color=(i * 60, 90, 90)), f"image/{fmt.lower()}")
        for i, fmt in enumerate(["JPEG", "PNG", "GIF"])
    ]
    response = wechat.post_json("/upload", {"server_ids": ids})
    assert response.status_code == 200
    items = response.json()["items"]
    assert [i["status"] for i in items] == ["ok", "ok", "ok"]
    assert all(i["size"] > 0 and i["url"] == f"/uploads/{i['id']}" for i in items)
    page = logged_in.get(live.url("/upload")).text
    for item in items:
        assert f'src="/uploads/{item["id"]}"' in page
    image = logged_in.get(live.url(items[0]["url"]))
    assert image.headers["Content-Type"] == "image/jpeg"
    assert image.headers["X-Content-Type-Options"] == "nosniff"
    assert image.content.startswith(b"\xff\xd8\xff")
    assert len(stored_files(app)) == 3


def test_expired_media_is_reported_for_that_item_only(logged_in, emu, wechat, app):
    good = emu.upload_media(image_bytes())
    items = wechat.post_json("/upload", {"server_ids": ["expired0media0id", good]}).json()["items"]
    assert items[0]["status"] == "error" and items[0]["error"] == "media_expired"
    assert "已失效" in items[0]["message"]
    assert items[1]["status"] == "ok"
    assert len(stored_files(app)) == 1


@pytest.mark.parametrize(
    "body,ctype",
    [
        (b"<html><script>alert(1)</script></html>", "image/jpeg"),
        (b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"/>', "image/svg+xml"),
        (b"\xff\xd8\xff\xe0 not really a jpeg", "image/jpeg"),
        (b"GIF89a<script>alert(1)</script>", "image/gif"),
    ],
)
def test_non_images_are_refused_and_nothing_is_kept(logged_in, emu, wechat, app, body, ctype):
    media_id = emu.upload_media(body, ctype)
    item = wechat.post_json("/upload", {"server_ids": [media_id]}).json()["items"][0]
    assert item["status"] == "error" and item["error"] == "not_an_image"
    assert stored_files(app) == []  # no object, no temp file


def test_polyglot_is_reencoded(logged_in, live, emu, wechat):
    media_id = emu.upload_media(image_bytes() + b"<script>alert(1)</script>")
    item = wechat.post_json("/upload", {"server_ids": [media_id]}).json()["items"][0]
    assert item["status"] == "ok"
    assert b"<script>" not in logged_in.get(live.url(item["url"])).content


def test_oversize_media_is_refused_without_partial_file(tmp_path, emu, phone, media_config):
    from support import LiveServer
    from wxsite import create_app

    app = create_app(site_config(tmp_path, emu, WXSITE_MEDIA_MAX_BYTES=20_000, **media_config))
    live = LiveServer(app)
    try:
        wechat = WeChat(live, phone)
        wechat.login()
        big = emu.upload_media(image_bytes("PNG", size=(400, 400)) + os.urandom(30_000))
        response = wechat.post_json("/upload", {"server_ids": [big]})
        item = response.json()["items"][0]
        assert item["error"] == "too_large" and "过大" in item["message"]
        assert stored_files(app) == []
    finally:
        live.shutdown()


def test_wechat_down_mid_batch(logged_in, emu, wechat, app):
    ids = [emu.upload_media(image_bytes(color=(i * 80, 0, 0))) for i in range(3)]
    wechat.post_json(
        "/upload", {"server_ids": [ids[0]]}
    )  # first one in; now WeChat breaks for the next
    emu.fault(protocol.MEDIA_GET, status=502, count=3)  # one item's attempt and its retries
    items = wechat.post_json("/upload", {"server_ids": ids[1:]}).json()["items"]
    assert items[0]["status"] == "error" and items[0]["error"] == "wechat_unavailable"
    assert items[1]["status"] == "ok"
    assert len(stored_files(app)) == 2


def test_stale_token_on_media_get_is_refreshed_once(logged_in, emu, wechat):
    media_id = emu.upload_media(image_bytes())
    wechat.post_json("/upload", {"server_ids": [emu.upload_media(image_bytes(color=(1, 2, 3)))]})
    emu.revoke_tokens(protocol.EMULATOR_APPID)
    before = emu.count(protocol.STABLE_TOKEN)
    assert (
        wechat.post_json("/upload", {"server_ids": [media_id]}).json()["items"][0]["status"] == "ok"
    )
    assert emu.count(protocol.STABLE_TOKEN) == before + 1


def test_duplicates_store_one_file(logged_in, emu, wechat, app):
    data = image_bytes()
    first, second = emu.upload_media(data), emu.upload_media(data)
    items = wechat.post_json("/upload", {"server_ids": [first, second]}).json()["items"]
    assert [i["status"] for i in items] == ["ok", "duplicate"]
    assert items[0]["id"] == items[1]["id"]
    assert len(stored_files(app)) == 1


def test_concurrent_same_media_stores_one_file(logged_in, emu, wechat, app):
    media_id = emu.upload_media(image_bytes(size=(300, 300)))
    emu.fault(protocol.MEDIA_GET, stall=0.3, count=2)
    answers = []
    threads = [
        threading.Thread(
            target=lambda: answers.append(
                wechat.post_json("/upload", {"server_ids": [media_id]}).json()
            )
        )
        for _ in range(2)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ids = {a["items"][0]["id"] for a in answers}
    assert len(ids) == 1 and len(stored_files(app)) == 1


@pytest.mark.parametrize(
    "media_id", ["../../app.db", "%2e%2e%2f", "x&access_token=abc", "a/b", "", "x" * 200, 42, None]
)
def test_bad_media_ids_never_reach_wechat(logged_in, emu, wechat, media_id):
    item = wechat.post_json("/upload", {"server_ids": [media_id]}).json()["items"][0]
    assert item["error"] == "invalid_media_id"
    assert emu.count(protocol.MEDIA_GET) == 0


@pytest.mark.parametrize(
    "body", [{}, {"server_ids": []}, {"server_ids": "abc"}, {"server_ids": ["a"] * 10}, [1, 2]]
)
def test_bad_request_bodies_are_400_json(logged_in, wechat, body):
    response = wechat.post_json("/upload", body)
    assert response.status_code == 400 and response.json()["error"] == "bad_request"


def test_post_without_csrf_is_refused(logged_in, live, emu):
    response = logged_in.post(live.url("/upload"), json={"server_ids": ["abc"]})
    assert response.status_code == 400
    assert emu.count(protocol.MEDIA_GET) == 0


def test_only_the_owner_sees_an_upload(logged_in, live, emu, wechat):
    media_id = emu.upload_media(image_bytes())
    item = wechat.post_json("/upload", {"server_ids": [media_id]}).json()["items"][0]
    other = WeChat(live)
    other.login(user="lisi")
    assert other.get(item["url"]).status_code == 404
    assert f'/uploads/{item["id"]}"' not in other.get("/upload").text
    assert other.get("/uploads/999999").status_code == 404


def test_delete_needs_csrf_and_removes_the_file(logged_in, live, emu, wechat, app):
    media_id = emu.upload_media(image_bytes())
    item = wechat.post_json("/upload", {"server_ids": [media_id]}).json()["items"][0]
    url = live.url(f"/uploads/{item['id']}/delete")
    assert logged_in.post(url).status_code == 400
    token = csrf_token(logged_in.get(live.url("/upload")).text)
    response = logged_in.post(url, data={"csrf_token": token})
    assert response.status_code == 200 and "已删除" in response.text
    assert stored_files(app) == []
    assert logged_in.get(live.url(item["url"])).status_code == 404


def test_disk_full_stores_nothing_and_retry_succeeds(tmp_path, emu, phone, media_config):
    from support import LiveServer
    from wxsite import create_app

    uploads = tmp_path / "small"
    uploads.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(uploads)]).returncode:
        pytest.fail("cannot mount a small tmpfs (tests run as root in CI)")
    # The full disk is where downloads land: the folder itself, or S3 mode's temp folder.
    where = "WXSITE_UPLOADS_TMP" if media_config else "WXSITE_UPLOADS"
    try:
        app = create_app(site_config(tmp_path, emu, **{**media_config, where: str(uploads)}))
        live = LiveServer(app)
        wechat = WeChat(live, phone)
        wechat.login()
        big = emu.upload_media(image_bytes("PNG", size=(200, 200)) + os.urandom(100_000))
        item = wechat.post_json("/upload", {"server_ids": [big]}).json()["items"][0]
        assert item["error"] == "save_failed" and "保存失败" in item["message"]
        assert os.listdir(uploads / "images") == [] and stored_files(app) == []
        small = emu.upload_media(image_bytes())
        again = wechat.post_json("/upload", {"server_ids": [small]}).json()
        assert again["items"][0]["status"] == "ok"
        live.shutdown()
    finally:
        subprocess.run(["umount", str(uploads)])
