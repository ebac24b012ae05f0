"""The Redis credential store (several hosts): single flight, and Redis down or stalled."""

import shutil
import socket
import subprocess
import threading
import time

import pytest

from support import site_config
from stack import free_port
from wxsite import create_app
from wxsite.redis_store import RedisCredentialStore, StoreUnavailable
from wxsite.wechat import WeChatClient, protocol


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory):
    binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    if not shutil.which(binary):
        pytest.fail("redis-server is missing: run `make test` (installs Debian's redis-server)")
    port = free_port()
    workdir = tmp_path_factory.mktemp("redis")
    proc = subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(workdir),
        ],
        stdout=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            assert time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.05)
    yield f"redis://127.0.0.1:{port}/0"
    proc.terminate()
    proc.wait(10)


@pytest.fixture
def redis_store(redis_url):
    store = RedisCredentialStore(redis_url)
    store.redis.flushdb()
    return store


def client_for(store, emu):
    return WeChatClient(
        protocol.EMULATOR_APPID, protocol.EMULATOR_SECRET, store, api_base=emu.base_url, deadline=8
    )


def test_single_flight_across_hosts_sharing_redis(redis_store, redis_url, emu):
    emu.fault(protocol.STABLE_TOKEN, stall=0.5)
    # Separate clients with their own memory caches and connections: "hosts".
    hosts = [client_for(RedisCredentialStore(redis_url), emu) for _ in range(6)]
    seen = []
    threads = [
        threading.Thread(target=lambda c=c: seen.append(c.jsapi_ticket())) for c in hosts * 4
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(seen) == 24 and len(set(seen)) == 1
    assert emu.count(protocol.STABLE_TOKEN) == 1
    assert emu.count(protocol.TICKET) == 1


def test_lease_expires_when_its_holder_vanishes(redis_store, emu):
    assert redis_store.acquire("wxdead", "access_token", "ghost", 0, 0.3)
    assert not redis_store.acquire("wxdead", "access_token", "other", 0, 0.3)
    time.sleep(0.4)
    assert redis_store.acquire("wxdead", "access_token", "other", 0, 0.3)


def test_invalidate_only_the_failed_value(redis_store):
    redis_store.acquire("wxa", "access_token", "me", 0, 5)
    redis_store.save("wxa", "access_token", "me", "NEW", time.time() + 7200)
    redis_store.invalidate("wxa", "access_token", "OLD")
    assert redis_store.read("wxa", "access_token").value == "NEW"
    redis_store.invalidate("wxa", "access_token", "NEW")
    assert redis_store.read("wxa", "access_token").value is None


def test_stale_token_refetched_once_with_redis(redis_store, emu):
    client = client_for(redis_store, emu)
    openid = emu.users()["zhangsan"]["openids"][protocol.EMULATOR_APPID]
    client.access_token()
    emu.revoke_tokens(protocol.EMULATOR_APPID)
    assert client.user_info(openid)["subscribe"] == 1
    assert emu.count(protocol.STABLE_TOKEN) == 2


def test_redis_down_fails_fast_and_token_free_pages_still_work(tmp_path, emu):
    url = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    app = create_app(site_config(tmp_path, emu, WXSITE_REDIS_URL=url))
    client = app.test_client()
    assert client.get("/").status_code == 200
    health = client.get("/healthz").get_json()
    assert health["credentials"]["access_token"]["error"] == "credential store unavailable"
    with app.app_context():
        from wxsite import wx

        with pytest.raises(StoreUnavailable):
            wx.client().access_token()
    assert emu.count(protocol.STABLE_TOKEN) == 0  # no uncoordinated fetch


def test_stalled_redis_times_out(emu):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(5)  # accepts connections, never answers
    try:
        store = RedisCredentialStore(
            f"redis://127.0.0.1:{listener.getsockname()[1]}/0", timeout=0.3
        )
        with pytest.raises(StoreUnavailable):
            client_for(store, emu).access_token()
    finally:
        listener.close()
    assert emu.count(protocol.STABLE_TOKEN) == 0


def test_bad_redis_url_is_a_config_error():
    from wxsite import config

    with pytest.raises(config.ConfigError, match="^WXSITE_REDIS_URL"):
        config.load({"WXSITE_REDIS_URL": "http://localhost:6379"})
