"""Shared credentials under faults (RELIABILITY 38–46, 60–62), against the real emulator.

Several ``WeChatClient`` instances over one store stand for several workers: each has its
own memory cache, and they share only the SQLite file, exactly like gunicorn's workers.
Time moves through a controllable clock; calls are counted by the emulator.
"""

import re
import threading
import time
from functools import partial

import pytest

from support import Clock, in_parallel
from wxsite import engines, store
from wxsite.wechat import WeChatClient, WeChatError, credentials, jssdk, protocol

APPID, SECRET = protocol.EMULATOR_APPID, protocol.EMULATOR_SECRET
TOKEN, TICKET = "access_token", "jsapi_ticket"


@pytest.fixture
def clock():
    return Clock()


def worker(db_path, emu, clock, token_api="stable", **options):
    """One worker's client: its own memory cache, the shared SQLite store."""
    options.setdefault("deadline", 8)
    return WeChatClient(
        APPID,
        SECRET,
        store.CredentialStore(db_path),
        api_base=emu.base_url,
        open_base=emu.base_url,
        token_api=token_api,
        clock=clock,
        **options,
    )


def wechat_calls(emu):
    """Calls per WeChat API path (the fake JS-SDK's own checks left out)."""
    return {p: n for p, n in emu.counters().items() if not p.startswith("/_emu/")}


def stored(db_path, kind):
    return store.CredentialStore(db_path).read(APPID, kind)


# -- 60: a failed refresh ahead of expiry keeps serving the stored value ----------------------

REFRESH_FAULTS = [
    pytest.param({"errcode": protocol.QUOTA_REACHED}, id="45009"),
    pytest.param({"errcode": protocol.IP_NOT_WHITELISTED}, id="40164"),
    pytest.param({"status": 502}, id="5xx"),
    pytest.param({"body": "{", "content_type": "application/json"}, id="broken-json"),
]


def test_a_refresh_ahead_that_times_out_keeps_serving_the_stored_token(db_path, emu, clock):
    w = worker(db_path, emu, clock, deadline=1.0, read_timeout=0.5)
    token = w.access_token()
    clock.offset = protocol.TOKEN_LIFETIME - 200  # inside the last 5 minutes
    emu.fault(protocol.STABLE_TOKEN, count=-1, stall=3)
    try:
        before = emu.count(protocol.STABLE_TOKEN)
        assert w.access_token() == token  # the refresh timed out: the page still works
        assert w.access_token() == token
        assert emu.count(protocol.STABLE_TOKEN) - before <= 1  # retried later, not per page
    finally:
        emu.clear_faults()


@pytest.mark.parametrize("fault", REFRESH_FAULTS)
def test_failed_token_refresh_ahead_keeps_serving_the_stored_token(
    db_path, emu, clock, fault, caplog
):
    workers = [worker(db_path, emu, clock) for _ in range(3)]
    token = workers[0].access_token()
    clock.offset = protocol.TOKEN_LIFETIME - 200  # inside the last 5 minutes
    emu.fault(protocol.STABLE_TOKEN, count=-1, **fault)
    before = emu.count(protocol.STABLE_TOKEN)
    for _ in range(5):
        for w in workers:
            assert w.access_token() == token  # no page fails
    # One refresh was tried; the others waited for "later" instead of asking WeChat again.
    assert emu.count(protocol.STABLE_TOKEN) - before <= 3  # 5xx/garbage: bounded retries
    attempts = emu.count(protocol.STABLE_TOKEN)
    assert "refreshing access_token ahead of expiry failed" in caplog.text
    assert SECRET not in caplog.text and token not in caplog.text

    # Later, with WeChat healthy again, the refresh is tried once more and succeeds.
    emu.clear_faults()
    clock.offset += credentials.ERROR_BACKOFF + 1
    assert workers[1].access_token()
    assert emu.count(protocol.STABLE_TOKEN) == attempts + 1


def test_failed_refresh_is_retried_later_not_on_every_page(db_path, emu, clock):
    workers = [worker(db_path, emu, clock, token_api="classic") for _ in range(4)]
    token = workers[0].access_token()
    clock.offset = protocol.TOKEN_LIFETIME - 250
    emu.fault(protocol.TOKEN, count=-1, status=503)
    for w in workers * 10:
        assert w.access_token() == token
    failed = emu.count(protocol.TOKEN)
    assert failed <= 1 + 3  # the first fetch, then one refresh (with its bounded retries)
    clock.offset += credentials.REFRESH_RETRY / 2
    for w in workers * 10:
        assert w.access_token() == token
    assert emu.count(protocol.TOKEN) == failed  # "try again later", not before
    emu.clear_faults()
    clock.offset += credentials.REFRESH_RETRY
    new = workers[2].access_token()
    assert new != token  # classic: a fresh token
    assert all(w.access_token() == new for w in workers)


def test_failed_ticket_refresh_ahead_keeps_serving_the_stored_ticket(db_path, emu, clock):
    workers = [worker(db_path, emu, clock) for _ in range(3)]
    ticket = workers[0].jsapi_ticket()
    clock.offset = protocol.TICKET_LIFETIME - 100
    emu.fault(protocol.TICKET, count=-1, errcode=protocol.QUOTA_REACHED)
    for w in workers * 5:
        assert w.jsapi_ticket() == ticket
    assert emu.count(protocol.TICKET) == 2  # the first fetch and one failed refresh


def test_refresh_failure_after_expiry_is_an_error(db_path, emu, clock):
    w = worker(db_path, emu, clock)
    w.access_token()
    clock.offset = protocol.TOKEN_LIFETIME + 1  # the stored value is gone: nothing to serve
    emu.fault(protocol.STABLE_TOKEN, count=-1, errcode=protocol.QUOTA_REACHED)
    with pytest.raises(WeChatError) as info:
        w.access_token()
    assert info.value.errcode == protocol.QUOTA_REACHED


def test_stable_token_handed_back_near_expiry_is_not_asked_for_on_every_page(db_path, emu, clock):
    # stable_token answers the same token with what is left of its life: it stays "due".
    w = worker(db_path, emu, clock)
    token = w.access_token()
    emu.advance(protocol.TOKEN_LIFETIME - 200)
    clock.offset = protocol.TOKEN_LIFETIME - 200
    for _ in range(20):
        assert w.access_token() == token
    assert emu.count(protocol.STABLE_TOKEN) == 2


# -- 61: 40001 from an endpoint that issues credentials is a wrong AppSecret -------------------


@pytest.mark.parametrize(
    "token_api,path", [("stable", protocol.STABLE_TOKEN), ("classic", protocol.TOKEN)]
)
def test_40001_from_the_token_endpoint_is_a_wrong_secret_remembered_across_workers(
    db_path, emu, clock, token_api, path, caplog
):
    emu.fault(path, count=-1, errcode=protocol.INVALID_CREDENTIAL)
    workers = [worker(db_path, emu, clock, token_api=token_api) for _ in range(5)]
    for w in workers * 2:  # 10 page views on 5 workers
        with pytest.raises(WeChatError) as info:
            w.access_token()
        assert info.value.errcode == protocol.INVALID_CREDENTIAL
        assert info.value.misconfigured and not info.value.credential_invalid
        assert "WX_SECRET" in info.value.hint
    assert emu.count(path) == 1
    assert "WX_SECRET is wrong (40001" in caplog.text
    assert SECRET not in caplog.text
    # A minute later it is tried again (the operator may have fixed it).
    emu.clear_faults()
    clock.offset += credentials.ERROR_BACKOFF + 1
    assert workers[3].access_token()
    assert emu.count(path) == 2


def test_40001_on_the_ticket_endpoint_is_still_a_stale_token(db_path, emu, clock):
    w = worker(db_path, emu, clock)
    w.access_token()
    emu.fault(protocol.TICKET, errcode=protocol.INVALID_CREDENTIAL)
    assert w.jsapi_ticket()
    assert emu.count(protocol.STABLE_TOKEN) == 2  # token dropped and fetched once more
    assert emu.count(protocol.TICKET) == 2


def test_ticket_needs_a_token_whose_secret_is_wrong(db_path, emu, clock):
    emu.fault(protocol.STABLE_TOKEN, count=-1, errcode=protocol.INVALID_CREDENTIAL)
    workers = [worker(db_path, emu, clock) for _ in range(3)]
    for w in workers * 3:
        with pytest.raises(WeChatError) as info:
            w.jsapi_ticket()
        assert info.value.misconfigured and "WX_SECRET" in info.value.hint
    assert emu.count(protocol.STABLE_TOKEN) == 1
    assert emu.count(protocol.TICKET) == 0


def test_wrong_secret_on_the_code_exchange_is_remembered_across_workers(db_path, emu, clock):
    emu.fault(protocol.SNS_ACCESS_TOKEN, count=-1, errcode=protocol.INVALID_CREDENTIAL)
    workers = [worker(db_path, emu, clock) for _ in range(3)]
    for w in workers * 2:
        with pytest.raises(WeChatError) as info:
            w.exchange_code("somecode")
        assert info.value.errcode == protocol.INVALID_CREDENTIAL
        assert info.value.misconfigured and "WX_SECRET" in info.value.hint
    assert emu.count(protocol.SNS_ACCESS_TOKEN) == 1
    clock.offset += credentials.ERROR_BACKOFF + 1
    with pytest.raises(WeChatError):
        workers[0].exchange_code("somecode")
    assert emu.count(protocol.SNS_ACCESS_TOKEN) == 2


def test_a_bad_code_is_not_remembered(db_path, emu, clock):
    workers = [worker(db_path, emu, clock) for _ in range(2)]
    for w in workers * 2:
        with pytest.raises(WeChatError) as info:
            w.exchange_code("nosuchcode")
        assert info.value.errcode == protocol.INVALID_CODE and not info.value.misconfigured
    assert emu.count(protocol.SNS_ACCESS_TOKEN) == 4


# -- 40/3b: the lease outlasts the call; only its holder saves ------------------------------


@pytest.mark.parametrize("deadline", [1.0, 15.0, 40.0])
def test_lease_outlasts_the_calls_deadline(db_path, emu, deadline):
    emu.fault(protocol.STABLE_TOKEN, stall=0.5)
    w = worker(db_path, emu, Clock(), deadline=deadline, read_timeout=5)
    started = time.time()
    fetch = threading.Thread(target=w.access_token)
    fetch.start()
    lease_until = None
    while fetch.is_alive():
        db = store.connect(db_path)
        seen = db.scalar("SELECT lease_until FROM credentials WHERE kind = 'access_token'")
        db.close()
        if seen:
            lease_until = seen
            break
        time.sleep(0.01)
    fetch.join()
    assert lease_until is not None, "never saw the lease"
    assert lease_until - started >= deadline + 1


def test_a_holder_whose_lease_was_taken_over_does_not_overwrite(db_path, emu):
    # A's call is slow; B's clock is far ahead, so B sees A's lease as expired and takes over
    # (what a fetch outliving its lease looks like to the others).
    emu.fault(protocol.TOKEN, stall=1.5)
    a = worker(db_path, emu, Clock(), token_api="classic")
    ahead = Clock()
    ahead.offset = 120
    b = worker(db_path, emu, ahead, token_api="classic")
    seen = {}
    slow = threading.Thread(target=lambda: seen.setdefault("a", a.access_token()))
    slow.start()
    while emu.count(protocol.TOKEN) < 1:
        time.sleep(0.01)
    seen["b"] = b.access_token()
    slow.join()
    assert emu.count(protocol.TOKEN) == 2
    assert stored(db_path, TOKEN).value == seen["b"]  # A's late value did not replace it
    assert seen["a"] == seen["b"]  # and A follows the stored one
    assert a.access_token() == seen["b"]


def test_sqlite_save_release_and_fail_only_by_the_current_holder(db_path):
    s = store.CredentialStore(db_path)
    assert s.acquire("wxa", TOKEN, "A", 0, 10)
    assert not s.acquire("wxa", TOKEN, "B", 5, 15)  # A's lease runs until 10
    assert s.acquire("wxa", TOKEN, "B", 11, 21)  # expired: B takes over
    assert not s.renew("wxa", TOKEN, "A", 12, 22)
    assert s.save("wxa", TOKEN, "B", "from-B", 7200)
    assert not s.save("wxa", TOKEN, "A", "from-A", 7300)
    s.fail("wxa", TOKEN, "A", 45009, 99)
    row = s.read("wxa", TOKEN)
    assert (row.value, row.error_until) == ("from-B", 0)
    # Expired but not taken over: nobody else fetched, so the late holder may still save.
    assert s.acquire("wxa", TOKEN, "C", 30, 40)
    assert s.renew("wxa", TOKEN, "C", 50, 60)
    assert s.save("wxa", TOKEN, "C", "from-C", 7400)
    assert s.read("wxa", TOKEN).value == "from-C"


def test_sqlite_recheck_window_is_shared_and_drops_only_the_refused_value(db_path):
    s = store.CredentialStore(db_path)
    s.acquire("wxa", TICKET, "A", 0, 10)
    s.save("wxa", TICKET, "A", "T1", 7200)
    assert s.recheck("wxa", TICKET, "OTHER", 100, 280)  # opens the window, keeps T1
    assert s.read("wxa", TICKET).value == "T1"
    assert not s.recheck("wxa", TICKET, "T1", 150, 330)  # the window opened at 100 is open
    assert s.read("wxa", TICKET).value == "T1"
    assert s.recheck("wxa", TICKET, "T1", 281, 461)
    assert store.CredentialStore(db_path).read("wxa", TICKET).value is None


# -- 62 / 15: a value changed in the store reaches every worker within seconds -------------------


def test_a_replaced_ticket_reaches_every_workers_memory_within_seconds(db_path, emu, clock):
    workers = [worker(db_path, emu, clock) for _ in range(4)]
    first = {w.jsapi_ticket() for w in workers}
    assert len(first) == 1
    replaced = workers[0].credentials.refresh(TICKET)  # e.g. `wx token --refresh`
    assert replaced not in first
    calls = emu.counters()
    clock.offset += credentials.REVALIDATE_EVERY
    assert {w.jsapi_ticket() for w in workers} == {replaced}
    assert emu.counters() == calls  # memory followed the store: no WeChat call


@pytest.mark.sqlite_only
def test_revalidation_reads_the_store_and_never_writes(db_path, emu, clock, monkeypatch):
    w = worker(db_path, emu, clock)
    w.jsapi_ticket()
    statements = []
    original = engines.SqliteEngine.connect

    def traced(self):
        db = original(self)
        db.native.conn.set_trace_callback(statements.append)
        return db

    monkeypatch.setattr(engines.SqliteEngine, "connect", traced)
    for _ in range(3):
        for _ in range(20):
            w.jsapi_ticket()
        clock.offset += credentials.REVALIDATE_EVERY
    reads = [s for s in statements if s.lstrip().upper().startswith("SELECT")]
    writes = [s for s in statements if re.match(r"\s*(INSERT|UPDATE|DELETE|BEGIN)", s, re.I)]
    assert writes == []
    assert 1 <= len(reads) <= 3  # at most one read per interval, not one per page


def test_store_down_during_revalidation_keeps_serving_memory(db_path, emu, clock, monkeypatch):
    w = worker(db_path, emu, clock)
    ticket = w.jsapi_ticket()
    clock.offset += credentials.REVALIDATE_EVERY

    def down(*args):
        raise OSError("store down")

    monkeypatch.setattr(w.credentials.store, "read", down)
    assert w.jsapi_ticket() == ticket
    assert emu.count(protocol.TICKET) == 1


# -- 62: a ticket WeChat no longer honours: one re-fetch for all workers -----------------------


def page_config(client, url="http://site.example/share"):
    return client.jssdk_config(url, ["updateAppMessageShareData"])


def verifies(emu, config, url="http://site.example/share"):
    import requests

    body = {**config, "url": url}
    return requests.post(emu.base_url + "/_emu/jssdk/verify", json=body, timeout=5).json()["ok"]


def retry_config(client, config, url="http://site.example/share"):
    return client.jssdk_retry_config(
        url, config["jsApiList"], config["timestamp"], config["nonceStr"], config["signature"]
    )


def test_refused_ticket_is_refetched_once_for_every_worker(db_path, emu, clock):
    workers = [worker(db_path, emu, clock) for _ in range(6)]
    configs = [page_config(w) for w in workers]
    emu.reset()  # the emulator forgets its tickets (and tokens): WeChat no longer honours ours
    assert not any(verifies(emu, c) for c in configs)
    answers = in_parallel([partial(retry_config, w, c) for w, c in zip(workers, configs)])
    assert all(a is not None and verifies(emu, a) for a in answers)
    assert emu.count(protocol.TICKET) == 2  # the dead token's 40001, then one new ticket
    assert emu.count(protocol.STABLE_TOKEN) == 1

    # The same reports again (WeChat still refusing, or a flood): no further WeChat call.
    fresh = answers[0]
    for w in workers * 3:
        assert retry_config(w, fresh) is None  # signed with the shared ticket: not the ticket
    assert emu.count(protocol.TICKET) == 2
    # After the interval one more re-check is allowed, for all workers together.
    clock.offset += credentials.RECHECK_EVERY + 1
    again = [retry_config(w, fresh) for w in workers]
    assert emu.count(protocol.TICKET) == 3
    assert sum(a is not None for a in again) >= 1


def test_a_page_signed_by_a_worker_with_an_old_ticket_gets_the_shared_one(db_path, emu, clock):
    a, b = worker(db_path, emu, clock), worker(db_path, emu, clock)
    old = page_config(a)
    b.credentials.refresh(TICKET)
    emu.advance(protocol.CLASSIC_TOKEN_GRACE + 1)  # the old ticket no longer verifies
    assert not verifies(emu, old)
    calls = wechat_calls(emu)
    fixed = retry_config(a, old)  # a's memory still holds the old ticket
    assert fixed is not None and verifies(emu, fixed)
    assert wechat_calls(emu) == calls  # it followed the store: no WeChat call


def test_a_garbage_report_spends_nothing(db_path, emu, clock):
    w = worker(db_path, emu, clock)
    config = page_config(w)
    calls = wechat_calls(emu)
    forged = {**config, "signature": "0" * 40}
    answer = retry_config(w, forged)
    assert answer is not None and verifies(emu, answer)  # what /jssdk/config would sign too
    assert wechat_calls(emu) == calls


def test_signature_helper_matches_what_the_emulator_checks(db_path, emu, clock):
    w = worker(db_path, emu, clock)
    config = page_config(w)
    expected = jssdk.signature(
        w.jsapi_ticket(), config["nonceStr"], config["timestamp"], "http://site.example/share"
    )
    assert config["signature"] == expected and verifies(emu, config)


def test_an_ip_whitelist_refusal_stays_with_the_host_that_met_it(db_path, emu, clock):
    # 40164 names the caller's outbound IP: another host's may be whitelisted. Shared, it
    # stopped every host's fetches for ERROR_BACKOFF.
    a, b = worker(db_path, emu, clock), worker(db_path, emu, clock)
    emu.fault(protocol.STABLE_TOKEN, errcode=protocol.IP_NOT_WHITELISTED, count=1)
    with pytest.raises(WeChatError) as refused:
        a.access_token()
    assert refused.value.errcode == protocol.IP_NOT_WHITELISTED
    assert stored(db_path, "access_token").error_until == 0  # nothing shared
    token = b.access_token()  # another host fetches at once
    assert emu.count(protocol.STABLE_TOKEN) == 2
    assert a.access_token() == token  # and the refused host serves what it stored
    # The refused host itself does not ask again within the backoff.
    other = worker(db_path, emu, clock)
    other.credentials.forget()
    emu.fault(protocol.STABLE_TOKEN, errcode=protocol.IP_NOT_WHITELISTED, count=1)
    with pytest.raises(WeChatError):
        other.access_token()
    calls = emu.count(protocol.STABLE_TOKEN)
    with pytest.raises(WeChatError, match="on this host"):
        other.access_token()
    assert emu.count(protocol.STABLE_TOKEN) == calls
