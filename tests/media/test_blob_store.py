"""The blob store on both backends: the interface, byte ranges, all-or-nothing saves, the sweep.

Every test here runs ``[local]`` and ``[s3]`` (a real SeaweedFS, see tests/s3server.py).
"""

import os
import time

import pytest

from media_helpers import (
    blob_store,
    image_bytes,
    jobs_settled,
    stored_files,
)
from support import add_failing_trigger, amr_bytes, csrf_token, drop_trigger
from wxsite import maintenance, store
from wxsite.auth.users import LOGIN_MAX_AGE
from wxsite.media import blobs


def temp_file(tmp_path, data, name="src"):
    path = tmp_path / name
    path.write_bytes(data)
    return str(path)


def read(store_, key, wanted=None):
    blob = store_.open(key, wanted)
    return blob, b"".join(blob.chunks)


# -- the interface ----------------------------------------------------------------------------


def test_put_open_delete(app, tmp_path):
    store_ = blob_store(app)
    data = os.urandom(200_000)  # several read chunks
    src = temp_file(tmp_path, data)
    store_.put_file(src, "images/abc.jpg", "image/jpeg")
    assert store_.exists("images/abc.jpg")
    blob, body = read(store_, "images/abc.jpg")
    assert body == data and blob.size == blob.length == len(data) and not blob.partial
    assert "images/abc.jpg" in dict(store_.iter_keys())
    assert store_.delete("images/abc.jpg")
    assert not store_.exists("images/abc.jpg")
    with pytest.raises(blobs.BlobNotFound):
        store_.open("images/abc.jpg")
    store_.delete("images/abc.jpg")  # deleting twice is fine


@pytest.mark.parametrize(
    "wanted,expected",
    [((2, 6), b"2345"), ((7, None), b"789"), ((-3, None), b"789"), ((5, 500), b"56789")],
)
def test_byte_ranges(app, tmp_path, wanted, expected):
    store_ = blob_store(app)
    store_.put_file(temp_file(tmp_path, b"0123456789"), "voice/r.mp3", "audio/mpeg")
    blob, body = read(store_, "voice/r.mp3", wanted)
    assert body == expected and blob.partial and blob.size == 10
    assert blob.length == len(expected) and blob.start == b"0123456789".index(expected)
    with pytest.raises(blobs.RangeNotSatisfiable) as info:
        store_.open("voice/r.mp3", (10, 20))
    assert info.value.size == 10


@pytest.mark.parametrize(
    "key",
    ["../x.jpg", "images/../../x", "images/a/b.jpg", "other/x.jpg", "images/", "/images/x", ".."],
)
def test_only_generated_keys(app, tmp_path, key):
    store_ = blob_store(app)
    with pytest.raises(ValueError):
        store_.put_file(temp_file(tmp_path, b"x"), key, "image/jpeg")
    with pytest.raises(ValueError):
        store_.open(key)


def test_describe_never_shows_the_keys(app, backend):
    info = blob_store(app).describe()
    assert info["backend"] == backend
    text = repr(info)
    if backend == "s3":
        assert info["location"].startswith("s3://wxsite-media/t-")
        assert app.config["AWS_SECRET_ACCESS_KEY"] not in text
        assert app.config["AWS_ACCESS_KEY_ID"] not in text


def test_doctor_checks_the_store(app, backend):
    from wxsite import doctor

    check = doctor._uploads(app)
    assert check.ok, check.detail
    assert ("s3://" in check.detail) == (backend == "s3")
    assert stored_files(app) == []  # the probe is gone


# -- through the site ---------------------------------------------------------------------------


def test_served_with_ranges_for_audio(logged_in, live, emu, wechat, app):
    item = wechat.post_json("/upload", {"server_ids": [emu.upload_media(image_bytes())]}).json()
    url = live.url(item["items"][0]["url"])
    whole = logged_in.get(url)
    assert whole.status_code == 200 and whole.headers["Accept-Ranges"] == "bytes"
    assert whole.headers["Cache-Control"] == "private, no-store"
    assert int(whole.headers["Content-Length"]) == len(whole.content)
    part = logged_in.get(url, headers={"Range": "bytes=0-9"})
    assert part.status_code == 206 and part.content == whole.content[:10]
    assert part.headers["Content-Range"] == f"bytes 0-9/{len(whole.content)}"
    assert part.headers["X-Content-Type-Options"] == "nosniff"
    beyond = logged_in.get(url, headers={"Range": f"bytes={len(whole.content) + 5}-"})
    assert beyond.status_code == 416
    assert beyond.headers["Content-Range"] == f"bytes */{len(whole.content)}"
    # Several ranges, or an If-Range we cannot match: the whole file.
    several = logged_in.get(url, headers={"Range": "bytes=0-1,4-5"})
    assert several.status_code == 200 and several.content == whole.content
    # HEAD opens the file and must let it go unread.
    head = logged_in.head(url)
    assert head.status_code == 200 and head.content == b""
    assert head.headers["Content-Length"] == str(len(whole.content))


def test_a_failed_row_insert_leaves_no_object(logged_in, live, emu, wechat, app):
    with app.app_context():
        add_failing_trigger(store.get_db(), "refuse_uploads", "uploads", "INSERT")
    item = wechat.post_json("/upload", {"server_ids": [emu.upload_media(image_bytes())]}).json()
    assert item["items"][0]["error"] == "save_failed"
    voice = wechat.post_json(
        "/voice", {"server_id": emu.upload_media(amr_bytes(1), "audio/amr", "voice")}
    )
    assert voice.status_code == 503 and voice.json()["error"] == "save_failed"
    assert stored_files(app) == [] and stored_files(app, "voice") == []
    with app.app_context():
        db = store.get_db()
        drop_trigger(db, "refuse_uploads", "uploads")
        assert db.scalar("SELECT COUNT(*) FROM uploads") == 0
    again = wechat.post_json("/upload", {"server_ids": [emu.upload_media(image_bytes())]}).json()
    assert again["items"][0]["status"] == "ok" and len(stored_files(app)) == 1


def test_delete_removes_every_object_of_a_voice_note(logged_in, live, emu, wechat, app):
    item = wechat.post_json(
        "/voice", {"server_id": emu.upload_media(amr_bytes(1), "audio/amr", kind="voice")}
    ).json()["item"]
    jobs_settled(app)  # the voice.transcode job has made the MP3 (when ffmpeg is here)
    assert stored_files(app, "voice")  # the AMR, and the MP3 when ffmpeg is here
    token = csrf_token(logged_in.get(live.url("/voice")).text)
    logged_in.post(live.url(f"/uploads/{item['id']}/delete"), data={"csrf_token": token})
    assert stored_files(app, "voice") == []
    assert logged_in.get(live.url(item["url"])).status_code == 404


# -- the sweep ----------------------------------------------------------------------------------


def person(db):
    return db.scalar("INSERT INTO people (created_at) VALUES (0) RETURNING id")


def test_sweep_removes_an_object_whose_row_never_came(app, tmp_path):
    store_ = blob_store(app)
    with app.app_context():
        db = store.get_db()
        owner = person(db)
        store_.put_file(temp_file(tmp_path, b"kept"), "images/kept.jpg", "image/jpeg")
        store.add_upload(db, owner, "image", "m", "images/kept.jpg", "h", 4, "image/jpeg")
        # A worker killed after the put and before the row:
        store_.put_file(temp_file(tmp_path, b"lost"), "images/lost.jpg", "image/jpeg")
        # ... and one killed mid-download (local: beside the files; S3: the temp folder).
        part = os.path.join(store_.temp_dir("images"), ".part-killed")
        temp_file(tmp_path, b"half", "x")
        os.replace(tmp_path / "x", part)
        now = maintenance.sweep(db, store_, LOGIN_MAX_AGE)  # all of it is fresh: kept
        assert now["unowned_files"] == now["temporary_files"] == 0
        later = maintenance.sweep(
            db, store_, LOGIN_MAX_AGE, now=time.time() + maintenance.GRACE + 60
        )
    assert later["unowned_files"] == 1 and later["temporary_files"] == 1
    assert store_.exists("images/kept.jpg") and not store_.exists("images/lost.jpg")
    assert not os.path.exists(part)


def test_orphan_queue_is_emptied_through_the_store(app, tmp_path):
    store_ = blob_store(app)
    with app.app_context():
        db = store.get_db()
        owner = person(db)
        store_.put_file(temp_file(tmp_path, b"gone"), "images/gone.jpg", "image/jpeg")
        row, _ = store.add_upload(db, owner, "image", "m", "images/gone.jpg", "h", 4, "image/jpeg")
        store.delete_upload(db, row["id"], owner)  # ... and the worker dies before deleting
        assert store_.exists("images/gone.jpg")
        done = maintenance.sweep(db, store_, LOGIN_MAX_AGE)
        assert done["orphan_files"] == 1 and store.orphan_files(db) == []
    assert not store_.exists("images/gone.jpg")


def test_sweep_aborts_multipart_uploads_a_killed_worker_began(app, backend, s3_server):
    if backend != "s3":
        pytest.skip("a folder has no multipart uploads (its temp files are swept by name)")
    store_ = blob_store(app)
    client = s3_server.client()
    key = store_.prefix + "images/half.jpg"
    client.create_multipart_upload(Bucket=store_.bucket, Key=key)
    with app.app_context():
        db = store.get_db()
        assert maintenance.sweep(db, store_, LOGIN_MAX_AGE)["incomplete_uploads"] == 0
        later = maintenance.sweep(
            db, store_, LOGIN_MAX_AGE, now=time.time() + maintenance.GRACE + 60
        )
    assert later["incomplete_uploads"] == 1
    uploads = client.list_multipart_uploads(Bucket=store_.bucket, Prefix=store_.prefix)
    assert not uploads.get("Uploads")


def test_sweep_leaves_what_is_not_ours(app, backend, s3_server, tmp_path):
    store_ = blob_store(app)
    if backend == "s3":
        s3_server.client().put_object(
            Bucket=store_.bucket, Key=store_.prefix + "notes/readme.txt", Body=b"x"
        )
    else:
        os.makedirs(os.path.join(store_.root, "notes"))
        temp_file(tmp_path, b"x", "r")
        os.replace(tmp_path / "r", os.path.join(store_.root, "notes", "readme.txt"))
    with app.app_context():
        maintenance.sweep(
            store.get_db(), store_, LOGIN_MAX_AGE, now=time.time() + 2 * maintenance.GRACE
        )
    if backend == "s3":
        assert s3_server.keys(store_.bucket, store_.prefix) == [store_.prefix + "notes/readme.txt"]
    else:
        assert os.listdir(os.path.join(store_.root, "notes")) == ["readme.txt"]
