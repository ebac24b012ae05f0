"""Shared global credentials: single flight across real OS processes, refresh, errors.

These run the real client against the real emulator over HTTP, with the SQLite store.
"""

import multiprocessing
import threading
import time

import pytest

from wxsite import store
from wxsite.wechat import WeChatClient, WeChatError, protocol

APPID, SECRET = protocol.EMULATOR_APPID, protocol.EMULATOR_SECRET
PROCESSES, THREADS = 8, 8


def make_client(db_path, api_base, offset=0.0, token_api="stable", deadline=8, **options):
    return WeChatClient(
        APPID,
        SECRET,
        store.CredentialStore(db_path),
        api_base=api_base,
        open_base=api_base,
        token_api=token_api,
        clock=offset if callable(offset) else (lambda: time.time() + offset),
        deadline=deadline,
        **options,
    )


def _worker(db_path, api_base, offset, barrier, results):
    client = make_client(db_path, api_base, offset)
    seen, errors = [], []

    def ask():
        try:
            seen.append(client.jsapi_ticket())
        except Exception as exc:  # reported to the test, which fails on it
            errors.append(repr(exc))

    threads = [threading.Thread(target=ask) for _ in range(THREADS)]
    barrier.wait()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    results.put((sorted(set(seen)), errors))


def _run_processes(db_path, api_base, offset=0.0):
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(PROCESSES), ctx.Queue()
    procs = [
        ctx.Process(target=_worker, args=(db_path, api_base, offset, barrier, results))
        for _ in range(PROCESSES)
    ]
    for p in procs:
        p.start()
    outcomes = [results.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(10)
    tickets = set()
    for seen, errors in outcomes:
        assert errors == []
        tickets.update(seen)
    return tickets


@pytest.mark.slow
def test_single_flight_across_processes_cold_and_at_expiry(db_path, emu):
    # Slow the token endpoint so every process piles up on a cold cache.
    emu.fault(protocol.STABLE_TOKEN, stall=0.5)
    tickets = _run_processes(db_path, emu.base_url)
    assert len(tickets) == 1
    assert emu.count(protocol.STABLE_TOKEN) == 1
    assert emu.count(protocol.TICKET) == 1

    # Both clocks jump past the 7200 s lifetime: again exactly one fetch of each.
    emu.advance(7300)
    emu.fault(protocol.STABLE_TOKEN, stall=0.5)
    later = _run_processes(db_path, emu.base_url, offset=7300)
    assert len(later) == 1 and later != tickets
    assert emu.count(protocol.STABLE_TOKEN) == 2
    assert emu.count(protocol.TICKET) == 2


def _fetch_forever(db_path, api_base):
    # The lease is derived from the call's deadline: 2 s + 0.5 s here, to keep the test short.
    make_client(db_path, api_base, deadline=2, lease_margin=0.5).access_token()


@pytest.mark.slow
def test_killed_fetcher_does_not_block_others(db_path, emu):
    emu.fault(protocol.STABLE_TOKEN, stall=30)
    ctx = multiprocessing.get_context("spawn")
    proc = ctx.Process(target=_fetch_forever, args=(db_path, emu.base_url))
    proc.start()
    deadline = time.monotonic() + 20
    while emu.count(protocol.STABLE_TOKEN) < 1:
        assert time.monotonic() < deadline, "the first fetcher never reached WeChat"
        time.sleep(0.05)
    proc.kill()
    proc.join()
    client = make_client(db_path, emu.base_url, wait=10)
    assert client.access_token()
    assert emu.count(protocol.STABLE_TOKEN) == 2


def test_memory_cache_keeps_the_hot_path_off_sqlite_and_wechat(db_path, emu):
    client = make_client(db_path, emu.base_url)
    ticket = client.jsapi_ticket()
    reads = []
    original = client.credentials.store.read
    client.credentials.store.read = lambda *a: reads.append(a) or original(*a)
    for _ in range(50):
        assert client.jsapi_ticket() == ticket
    assert reads == []
    assert emu.count(protocol.TICKET) == 1


def test_stale_token_is_dropped_refetched_once_and_the_call_retried(db_path, emu):
    client = make_client(db_path, emu.base_url)
    openid = emu.users()["zhangsan"]["openids"][APPID]
    client.access_token()
    emu.revoke_tokens(APPID)  # as if another party had refreshed it
    info = client.follower_info(openid)
    assert info["subscribe"] == 1
    assert emu.count(protocol.STABLE_TOKEN) == 2
    assert emu.count(protocol.USER_INFO) == 2


def test_ticket_fetch_with_stale_token_refreshes_token_first(db_path, emu):
    client = make_client(db_path, emu.base_url)
    client.access_token()
    emu.fault(protocol.TICKET, errcode=40001)
    assert client.jsapi_ticket()
    assert emu.count(protocol.STABLE_TOKEN) == 2
    assert emu.count(protocol.TICKET) == 2


def test_only_the_token_that_failed_is_dropped(db_path, emu):
    # classic: every fetch gives a new token (stable_token would hand back the same one)
    a = make_client(db_path, emu.base_url, token_api="classic")
    b = make_client(db_path, emu.base_url, token_api="classic")
    old = a.access_token()
    b.credentials.invalidate("access_token", old)
    new = b.access_token()
    assert new != old
    a.credentials.invalidate("access_token", old)  # late report of the old token
    assert a.access_token() == new
    assert emu.count(protocol.TOKEN) == 2


@pytest.mark.parametrize(
    "errcode,words",
    [
        (protocol.IP_NOT_WHITELISTED, "IP whitelist"),
        (protocol.INVALID_APPSECRET, "WX_SECRET is wrong"),
        (protocol.INVALID_APPID, "WX_APPID is wrong"),
        (protocol.QUOTA_REACHED, "quota"),
    ],
)
def test_unfixable_errors_are_explained_and_not_retried(db_path, emu, errcode, words, caplog):
    emu.fault(protocol.STABLE_TOKEN, errcode=errcode, count=-1)
    client = make_client(db_path, emu.base_url)
    for _ in range(3):
        with pytest.raises(WeChatError) as info:
            client.access_token()
        assert info.value.errcode == errcode
    assert words in info.value.hint
    assert emu.count(protocol.STABLE_TOKEN) == 1  # the others answered from the stored failure
    assert words in caplog.text
    assert SECRET not in caplog.text


def test_busy_is_retried_with_backoff(db_path, emu):
    emu.fault(protocol.STABLE_TOKEN, errcode=-1, count=2)
    client = make_client(db_path, emu.base_url)
    assert client.access_token()
    assert emu.count(protocol.STABLE_TOKEN) == 3


@pytest.mark.parametrize(
    "fault",
    [
        {"status": 502},
        {"body": '{"access_token": "abc', "content_type": "application/json"},
        {"body": '{"errcode": "x"}', "content_type": "application/json"},
    ],
)
def test_broken_answers_are_wechat_errors_not_crashes(db_path, emu, fault):
    emu.fault(protocol.STABLE_TOKEN, count=-1, **fault)
    client = make_client(db_path, emu.base_url)
    with pytest.raises(WeChatError) as info:
        client.access_token()
    assert info.value.unavailable


def test_timeouts_are_bounded(db_path, emu):
    emu.fault(protocol.STABLE_TOKEN, stall=5, count=-1)
    client = WeChatClient(
        APPID,
        SECRET,
        store.CredentialStore(db_path),
        api_base=emu.base_url,
        read_timeout=0.3,
        deadline=1.5,
    )
    with pytest.raises(WeChatError) as info:
        client.access_token()
    assert info.value.unavailable
    emu.clear_faults()
    assert client.access_token()  # nothing stays locked after the failure


def test_classic_token_api(db_path, emu):
    client = make_client(db_path, emu.base_url, token_api="classic")
    assert client.access_token()
    assert emu.count(protocol.TOKEN) == 1
    assert emu.count(protocol.STABLE_TOKEN) == 0


def test_logs_never_carry_secrets_or_tokens(db_path, emu, caplog):
    caplog.set_level("DEBUG")
    client = make_client(db_path, emu.base_url)
    token, ticket = client.access_token(), client.jsapi_ticket()
    ours = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("wxsite"))
    for secret in (SECRET, token, ticket):
        assert secret not in ours
    assert "/cgi-bin/stable_token" in ours
