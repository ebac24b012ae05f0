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
from wxsite.store.redis_credentials import RedisCredentialStore, StoreUnavailable
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
    assert client.follower_info(openid)["subscribe"] == 1
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


def test_save_renew_and_fail_only_by_the_current_holder(redis_store):
    s = redis_store
    assert s.acquire("wxb", "access_token", "A", 0, 0.2)
    time.sleep(0.3)  # A's lease expires in Redis, A's call is still under way
    assert s.acquire("wxb", "access_token", "B", 0, 5)
    assert not s.renew("wxb", "access_token", "A", 0, 5)
    assert s.save("wxb", "access_token", "B", "from-B", time.time() + 7200)
    assert not s.save("wxb", "access_token", "A", "from-A", time.time() + 7300)
    s.fail("wxb", "access_token", "A", 45009, time.time() + 60)
    row = s.read("wxb", "access_token")
    assert row.value == "from-B" and row.error_until == 0
    # Expired but nobody took over: the late holder is still the last one granted a lease.
    assert s.acquire("wxb", "access_token", "C", 0, 0.2)
    time.sleep(0.3)
    assert s.renew("wxb", "access_token", "C", 0, 5)
    assert not s.acquire("wxb", "access_token", "D", 0, 5)  # renewed: still C's
    assert s.save("wxb", "access_token", "C", "from-C", time.time() + 7400)
    assert s.read("wxb", "access_token").value == "from-C"
    assert s.acquire("wxb", "access_token", "D", 0, 5)  # saving released it


def test_recheck_window_is_shared_and_drops_only_the_refused_value(redis_store):
    s = redis_store
    s.acquire("wxc", "jsapi_ticket", "A", 0, 5)
    s.save("wxc", "jsapi_ticket", "A", "T1", time.time() + 7200)
    assert s.recheck("wxc", "jsapi_ticket", "OTHER", 0, 0.3)
    assert s.read("wxc", "jsapi_ticket").value == "T1"
    assert not s.recheck("wxc", "jsapi_ticket", "T1", 0, 0.3)  # the window is open
    assert s.read("wxc", "jsapi_ticket").value == "T1"
    time.sleep(0.4)
    assert s.recheck("wxc", "jsapi_ticket", "T1", 0, 0.3)
    assert s.read("wxc", "jsapi_ticket").value is None


def test_failures_are_noted_and_forgotten(redis_store):
    s = redis_store
    s.note_failure("wxd", "code_exchange", 40125, time.time() + 60)
    assert s.read("wxd", "code_exchange").error_code == 40125
    s.acquire("wxd", "jsapi_ticket", "A", 0, 5)
    s.save("wxd", "jsapi_ticket", "A", "T1", time.time() + 7200)
    for kind in ("code_exchange", "jsapi_ticket"):
        s.forget("wxd", kind)
        assert s.read("wxd", kind) is None
    assert s.acquire("wxd", "jsapi_ticket", "B", 0, 5)


def test_a_late_holder_follows_the_newer_value_with_redis(redis_store, redis_url, emu):
    # A's fetch outlives its lease (its key is dropped as Redis would on expiry); B takes over.
    emu.fault(protocol.TOKEN, stall=1.5)
    a, b = (
        WeChatClient(
            protocol.EMULATOR_APPID,
            protocol.EMULATOR_SECRET,
            RedisCredentialStore(redis_url),
            api_base=emu.base_url,
            token_api="classic",
            deadline=8,
        )
        for _ in range(2)
    )
    seen = {}
    slow = threading.Thread(target=lambda: seen.setdefault("a", a.access_token()))
    slow.start()
    while emu.count(protocol.TOKEN) < 1:
        time.sleep(0.01)
    redis_store.redis.delete(f"wxsite:cred:{protocol.EMULATOR_APPID}:access_token:lease")
    seen["b"] = b.access_token()
    slow.join()
    assert redis_store.read(protocol.EMULATOR_APPID, "access_token").value == seen["b"]
    assert seen["a"] == seen["b"]


def test_memory_follows_a_value_replaced_in_redis(redis_store, redis_url, emu):
    clock = [time.time()]
    hosts = [
        WeChatClient(
            protocol.EMULATOR_APPID,
            protocol.EMULATOR_SECRET,
            RedisCredentialStore(redis_url),
            api_base=emu.base_url,
            clock=lambda: clock[0],
            deadline=8,
        )
        for _ in range(3)
    ]
    first = {h.jsapi_ticket() for h in hosts}
    replaced = hosts[0].credentials.refresh("jsapi_ticket")
    assert replaced not in first
    clock[0] += 5
    assert {h.jsapi_ticket() for h in hosts} == {replaced}
    assert emu.count(protocol.TICKET) == 2
