"""S3 mode under faults: settings, a store that is down, stalled or refuses, big files.

RELIABILITY 35, 63, 64: a clear 503 on the media pages and nothing half-written while the
object store is away, the rest of the site unaffected, back to normal by itself when it
returns; wrong settings stop start-up with one line naming the variable.
"""

import json
import logging
import os
import signal
import subprocess
import sys

import pytest
import requests

from media_helpers import image_bytes, stored_files
from s3server import ACCESS_KEY, REGION, SECRET_KEY, free_port, start_server
from support import LiveServer, WeChat, amr_bytes, csrf_token, site_config
from wxsite import config, create_app, maintenance, store
from wxsite.auth.users import LOGIN_MAX_AGE
from wxsite.config import ConfigError
from wxsite.media import blobs
from wxsite.wechat import protocol

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
S3 = {
    "WXSITE_UPLOADS": "s3://wxsite-media/site",
    "AWS_ENDPOINT_URL": "https://cos.ap-guangzhou.myqcloud.com",
    "AWS_ACCESS_KEY_ID": "AKIDexample",
    "AWS_SECRET_ACCESS_KEY": "not-a-real-secret",
    "AWS_DEFAULT_REGION": "ap-guangzhou",
}


# -- settings -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value,location",
    [
        ("s3://wxsite-media", ("wxsite-media", "")),
        ("s3://wxsite-media/", ("wxsite-media", "")),
        ("s3://examplebucket-1250000000/wx/site/", ("examplebucket-1250000000", "wx/site")),
        ("/srv/wxsite/uploads", None),
        ("instance/uploads", None),
    ],
)
def test_uploads_locations(value, location):
    assert config.s3_location(value) == location
    settings = config.load({**S3, "WXSITE_UPLOADS": value})
    assert settings["WXSITE_UPLOADS"] == value


@pytest.mark.parametrize(
    "value",
    [
        "s3:/wxsite-media",
        "s3://",
        "s3://ab",
        "s3://Upper-Case",
        "s3://key:secret@bucket/x",
        "s3://bucket:9000/x",
        "s3://wxsite-media/a/../b",
        "s3://wxsite-media/a//b",
        "s3://wxsite-media/x?versionId=1",
        "s3://wxsite-media/%2e%2e",
    ],
)
def test_bad_s3_urls_name_wxsite_uploads(value):
    with pytest.raises(ConfigError) as info:
        config.load({**S3, "WXSITE_UPLOADS": value})
    assert str(info.value).startswith("WXSITE_UPLOADS") and "\n" not in str(info.value)
    assert "secret" not in str(info.value)  # keys pasted into the URL are not echoed


@pytest.mark.parametrize("name", config.S3_SETTINGS)
def test_each_missing_aws_setting_is_named(name):
    with pytest.raises(ConfigError) as info:
        config.load({**S3, name: ""})
    assert str(info.value).startswith(f"{name} is not set")
    assert S3["AWS_SECRET_ACCESS_KEY"] not in str(info.value)


@pytest.mark.parametrize(
    "name,value",
    [("AWS_ENDPOINT_URL", "cos.ap-guangzhou.myqcloud.com"), ("AWS_DEFAULT_REGION", "https://x")],
)
def test_malformed_aws_settings_are_named(name, value):
    with pytest.raises(ConfigError) as info:
        config.load({**S3, name: value})
    assert str(info.value).startswith(name)


def test_aws_settings_are_ignored_for_a_folder():
    settings = config.load({"WXSITE_UPLOADS": "/srv/uploads", "AWS_DEFAULT_REGION": "x y"})
    assert settings["WXSITE_UPLOADS"] == "/srv/uploads"


def test_start_up_names_the_missing_setting(tmp_path):
    env = {
        "PATH": os.environ["PATH"],
        "WXSITE_DOTENV": str(tmp_path / "none.env"),
        "WXSITE_DATABASE": str(tmp_path / "db"),
        "WXSITE_UPLOADS": "s3://wxsite-media",
        "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
        "AWS_ACCESS_KEY_ID": "a",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    result = subprocess.run(
        [sys.executable, "-c", "import wsgi"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert result.returncode == 3
    assert result.stderr.strip().splitlines() == [
        "wxsite: configuration error: AWS_SECRET_ACCESS_KEY is not set: "
        "WXSITE_UPLOADS=s3://wxsite-media needs AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, "
        "AWS_SECRET_ACCESS_KEY, AWS_DEFAULT_REGION"
    ]


# -- start-up against a real store ----------------------------------------------------------------


@pytest.fixture
def site_settings(tmp_path, emu, s3_server, s3_bucket):
    def settings(**overrides):
        return site_config(
            tmp_path,
            emu,
            **{
                **s3_server.settings(s3_bucket, "startup"),
                "WXSITE_UPLOADS_TMP": str(tmp_path / "tmp"),
                **overrides,
            },
        )

    return settings


@pytest.mark.parametrize(
    "overrides,name",
    [
        ({"AWS_SECRET_ACCESS_KEY": "wrong-secret-value"}, "AWS_SECRET_ACCESS_KEY"),
        ({"AWS_ACCESS_KEY_ID": "nobody"}, "AWS_ACCESS_KEY_ID"),
        ({"WXSITE_UPLOADS": "s3://no-such-bucket-here/x"}, "WXSITE_UPLOADS"),
    ],
)
def test_settings_the_store_refuses_stop_start_up(site_settings, overrides, name, caplog):
    with pytest.raises(ConfigError) as info:
        create_app(site_settings(**overrides))
    message = str(info.value)
    assert message.startswith(name) and "\n" not in message
    for secret in ("wrong-secret-value", SECRET_KEY):
        assert secret not in message and secret not in caplog.text


def test_a_store_that_does_not_answer_lets_the_site_start(tmp_path, emu, phone, caplog):
    dead = f"http://127.0.0.1:{free_port()}"
    app = create_app(
        site_config(
            tmp_path,
            emu,
            WXSITE_UPLOADS="s3://wxsite-media/x",
            AWS_ENDPOINT_URL=dead,
            AWS_ACCESS_KEY_ID=ACCESS_KEY,
            AWS_SECRET_ACCESS_KEY=SECRET_KEY,
            AWS_DEFAULT_REGION=REGION,
            WXSITE_UPLOADS_TMP=str(tmp_path / "tmp"),
        )
    )
    assert "unreachable at start-up" in caplog.text
    live = LiveServer(app)
    try:
        wechat = WeChat(live, phone)
        wechat.login()
        assert phone.get(live.url("/")).status_code == 200
        assert phone.get(live.url("/healthz")).status_code == 200
        post = wechat.post_json
        item = post("/upload", {"server_ids": [emu.upload_media(image_bytes())]}).json()["items"][0]
        assert item["error"] == "storage_unavailable" and "存储服务暂时不可用" in item["message"]
        assert os.listdir(tmp_path / "tmp" / "images") == []  # no temp file left
    finally:
        live.shutdown()
    assert SECRET_KEY not in caplog.text


# -- a store that goes away and comes back --------------------------------------------------------


@pytest.fixture(scope="module")
def own_server():
    """A SeaweedFS of this module's own: its tests stop and freeze it."""
    server = start_server()
    server.create_bucket("wxsite-outage")
    yield server
    server.remove()


@pytest.fixture
def outage_site(tmp_path, emu, own_server):
    app = create_app(
        site_config(
            tmp_path,
            emu,
            **own_server.settings("wxsite-outage", tmp_path.name),
            WXSITE_UPLOADS_TMP=str(tmp_path / "tmp"),
        )
    )
    live = LiveServer(app)
    yield app, live
    live.shutdown()
    if own_server.process is None:
        own_server.start()


def rows(app):
    with app.app_context():
        return store.get_db().scalar("SELECT COUNT(*) FROM uploads")


def test_store_down_is_a_clean_503_and_comes_back(outage_site, own_server, emu, phone, caplog):
    app, live = outage_site
    wechat = WeChat(live, phone)
    wechat.login()
    post = wechat.post_json
    first = post("/upload", {"server_ids": [emu.upload_media(image_bytes())]}).json()["items"][0]
    assert first["status"] == "ok"
    url = live.url(first["url"])
    assert phone.get(url).status_code == 200

    own_server.stop()
    downloads = emu.count(protocol.MEDIA_GET)
    ids = [emu.upload_media(image_bytes(color=(i, 9, 9))) for i in range(3)]
    items = post("/upload", {"server_ids": ids}).json()["items"]
    assert [i["error"] for i in items] == ["storage_unavailable"] * 3
    # One item met the dead store; the rest of the batch was not even downloaded.
    assert emu.count(protocol.MEDIA_GET) == downloads + 1
    voice = post("/voice", {"server_id": emu.upload_media(amr_bytes(1), "audio/amr", "voice")})
    assert voice.status_code == 503 and voice.json()["error"] == "storage_unavailable"
    temp = app.extensions[blobs.EXTENSION].temp_dir("images")
    assert rows(app) == 1 and os.listdir(temp) == []  # no row, no temp file
    page = phone.get(url)
    assert page.status_code == 503 and "存储服务暂时不可用" in page.text
    as_json = phone.get(url, headers={"Accept": "application/json"})
    assert as_json.status_code == 503 and as_json.json()["error"] == "storage_unavailable"
    # Everything that does not need the store keeps working.
    assert phone.get(live.url("/healthz")).status_code == 200
    assert phone.get(live.url("/upload")).status_code == 200
    with app.app_context():
        assert maintenance.sweep_if_due(app) is None  # logged, not raised

    own_server.start()
    assert len(stored_files(app)) == 1  # nothing reached the store while it was away
    assert phone.get(url).status_code == 200
    again = post("/upload", {"server_ids": ids[:1]}).json()["items"][0]
    assert again["status"] == "ok" and rows(app) == 2 and len(stored_files(app)) == 2
    assert SECRET_KEY not in caplog.text


def test_delete_while_the_store_is_down_is_finished_by_the_sweep(
    outage_site, own_server, emu, phone
):
    app, live = outage_site
    wechat = WeChat(live, phone)
    wechat.login()
    post = wechat.post_json
    item = post("/upload", {"server_ids": [emu.upload_media(image_bytes())]}).json()["items"][0]
    store_ = app.extensions[blobs.EXTENSION]
    key = next(k for k, _ in store_.iter_keys())
    page_token = csrf_token(phone.get(live.url("/upload")).text)
    own_server.stop()
    deleted = phone.post(live.url(f"/uploads/{item['id']}/delete"), data={"csrf_token": page_token})
    assert deleted.status_code == 200 and "已删除" in deleted.text
    own_server.start()
    assert store_.exists(key)
    with app.app_context():
        db = store.get_db()
        assert store.orphan_files(db) == [key]
        assert maintenance.sweep(db, store_, LOGIN_MAX_AGE)["orphan_files"] == 1
    assert not store_.exists(key)


def test_a_stalled_store_times_out(own_server, tmp_path):
    settings = {
        "AWS_ENDPOINT_URL": own_server.endpoint,
        "AWS_ACCESS_KEY_ID": ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
        "AWS_DEFAULT_REGION": REGION,
    }
    client = blobs.s3_client(settings, attempts=1, read_timeout=1.0)
    store_ = blobs.S3Blobs("wxsite-outage", "stall", client, str(tmp_path / "tmp"))
    src = tmp_path / "x"
    src.write_bytes(b"x" * 1000)
    own_server.process.send_signal(signal.SIGSTOP)  # accepts connections, never answers
    try:
        with pytest.raises(blobs.StorageUnavailable):
            store_.put_file(str(src), "images/x.jpg", "image/jpeg")
        with pytest.raises(blobs.StorageUnavailable):
            store_.open("images/x.jpg")
    finally:
        own_server.process.send_signal(signal.SIGCONT)
    store_.put_file(str(src), "images/x.jpg", "image/jpeg")
    assert store_.exists("images/x.jpg")


# -- a big file goes through without being held in memory ------------------------------------------

MEMORY_PROBE = """
import json, os, sys, tempfile, threading, time, tracemalloc
from wxsite import store
from wxsite.media import blobs
from wxsite.wechat import WeChatClient, protocol

base, big_id, small_id, settings = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
work = tempfile.mkdtemp()
path = os.path.join(work, "db")
db = store.connect(path); store.migrate(db); db.close()
client = WeChatClient(
    protocol.EMULATOR_APPID, protocol.EMULATOR_SECRET, store.CredentialStore(path), api_base=base
)
s3 = blobs.from_settings(settings, work)
PAGE = os.sysconf("SC_PAGE_SIZE")


def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE


def measure(work):
    # The peak of ru_maxrss was set by boto3 loading its models: sample the current RSS
    # instead, and count Python's own allocations (tracemalloc) beside it.
    baseline, peak, done = rss(), [0], threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], rss())
            time.sleep(0.002)

    sampler = threading.Thread(target=sample)
    tracemalloc.start()
    sampler.start()
    try:
        result = work()
    finally:
        done.set()
        sampler.join()
        traced = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return result, (max(peak[0], rss()) - baseline) / 2**20, traced / 2**20


def through(media_id, key):
    download = client.download_media(media_id, s3.temp_dir("images"), 64 << 20)
    s3.put_file(download.tmp_path, key, "image/jpeg")
    download.discard()
    blob = s3.open(key)
    return sum(len(chunk) for chunk in blob.chunks)


def held():
    answer = s3.client.get_object(Bucket=s3.bucket, Key=s3.prefix + "images/big.jpg")
    return len(answer["Body"].read())


through(small_id, "images/warm-up.jpg")  # imports, pools, the token
size, rss_mb, traced_mb = measure(lambda: through(big_id, "images/big.jpg"))
# The control: the same object read whole into memory, to show the measures see that.
_, control_rss_mb, control_traced_mb = measure(held)
print(json.dumps({
    "size": size, "rss_mb": rss_mb, "traced_mb": traced_mb,
    "control_rss_mb": control_rss_mb, "control_traced_mb": control_traced_mb,
}))
"""


def test_a_20_mb_file_streams_through_with_bounded_memory(emu, s3_server, s3_bucket, tmp_path):
    megabytes = 20
    big = emu.upload_media(b"\xff\xd8\xff\xe0" + os.urandom(megabytes * 1024 * 1024 - 4))
    small = emu.upload_media(b"\xff\xd8\xff\xe0" + os.urandom(1024))
    settings = {
        **s3_server.settings(s3_bucket, f"memory-{tmp_path.name}"),
        "WXSITE_UPLOADS_TMP": str(tmp_path / "tmp"),
    }
    out = subprocess.run(
        [sys.executable, "-c", MEMORY_PROBE, emu.base_url, big, small, json.dumps(settings)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout)
    logging.getLogger("wxsite.tests").warning("20 MB through S3: %s", result)
    assert result["size"] == megabytes * 1024 * 1024
    # Generous (about 1 and 2 MB here): less than one 8 MB part; holding the file would be
    # 20 MB, as the control shows.
    assert result["rss_mb"] < 8 and result["traced_mb"] < 8, result
    assert result["control_rss_mb"] > 15 and result["control_traced_mb"] > 15, result
    prefix = settings["WXSITE_UPLOADS"].split("/", 3)[3]
    keys = s3_server.keys(s3_bucket, prefix)
    assert [k.rsplit("/", 1)[1] for k in keys] == ["big.jpg", "warm-up.jpg"]
    # It went up as a multipart upload (an ETag of 3 parts), the small one as one PUT.
    head = s3_server.client().head_object(Bucket=s3_bucket, Key=f"{prefix}/images/big.jpg")
    assert head["ETag"].endswith('-3"'), head["ETag"]


def test_the_bucket_is_not_public(s3_server, s3_bucket, app_for_s3_item):
    url, key = app_for_s3_item
    # Straight to the store, without signing: refused.
    anonymous = requests.get(f"{s3_server.endpoint}/{s3_bucket}/{key}")
    assert anonymous.status_code == 403


@pytest.fixture
def app_for_s3_item(tmp_path, emu, phone, s3_server, s3_bucket):
    app = create_app(
        site_config(
            tmp_path,
            emu,
            **s3_server.settings(s3_bucket, f"public-{tmp_path.name}"),
            WXSITE_UPLOADS_TMP=str(tmp_path / "tmp"),
        )
    )
    live = LiveServer(app)
    try:
        wechat = WeChat(live, phone)
        wechat.login()
        post = wechat.post_json
        item = post("/upload", {"server_ids": [emu.upload_media(image_bytes())]}).json()["items"][0]
        store_ = app.extensions[blobs.EXTENSION]
        key = store_.prefix + next(k for k, _ in store_.iter_keys())
        yield live.url(item["url"]), key
    finally:
        live.shutdown()
