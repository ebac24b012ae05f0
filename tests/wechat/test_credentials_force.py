"""`wx token --force`: stable_token force_refresh, limited for every host, followed by every worker.

Several ``WeChatClient`` instances, each over its own ``CredentialStore`` of one database,
stand for workers on several hosts. The site's clock and the emulator's move together.
"""

import pytest

from support import Clock
from test_credentials_faults import worker
from wxsite import store
from wxsite.wechat import WeChatError, credentials, protocol

APPID, SECRET = protocol.EMULATOR_APPID, protocol.EMULATOR_SECRET
TOKEN = "access_token"


@pytest.fixture
def clock(emu):
    """A clock at 08:00:01 China time (00:00:01 UTC) of a coming day, the emulator's too."""
    clock = Clock()
    now = emu.clock()["now"]
    step = 86400 - now % 86400 + 1
    emu.advance(step)
    clock.offset = emu.clock()["now"] - clock()
    return clock


def advance(emu, clock, seconds):
    clock.offset += seconds
    emu.advance(seconds)


def test_force_retires_the_token_unlike_refresh(db_path, emu, clock):
    w = worker(db_path, emu, clock)
    first = w.access_token()
    assert w.credentials.refresh(TOKEN) == first  # stable_token hands back the same one
    forced = w.force_refresh_token()
    assert forced != first
    assert store.CredentialStore(db_path).read(APPID, TOKEN).value == forced
    assert w.credentials.force_status(TOKEN)["today"] == 1


def test_force_inside_30_seconds_is_refused_without_calling_wechat(db_path, emu, clock):
    a, b = worker(db_path, emu, clock), worker(db_path, emu, clock)
    forced = a.force_refresh_token()
    calls = emu.count(protocol.STABLE_TOKEN)
    advance(emu, clock, credentials.FORCE_SPACING - 1)
    with pytest.raises(credentials.ForceRefused, match="try again in 1 s"):
        b.force_refresh_token()  # another host: limited together
    assert emu.count(protocol.STABLE_TOKEN) == calls
    assert b.access_token() == forced
    advance(emu, clock, 1)
    assert b.force_refresh_token() != forced


def test_the_21st_force_of_a_china_day_is_refused_until_midnight(db_path, emu, clock):
    hosts = [worker(db_path, emu, clock), worker(db_path, emu, clock)]
    seen = set()
    for i in range(credentials.FORCE_DAILY):
        seen.add(hosts[i % 2].force_refresh_token())
        advance(emu, clock, credentials.FORCE_SPACING)
    assert len(seen) == credentials.FORCE_DAILY
    calls = emu.count(protocol.STABLE_TOKEN)
    with pytest.raises(credentials.ForceRefused, match="20 forced access_token refreshes today"):
        hosts[0].force_refresh_token()
    assert emu.count(protocol.STABLE_TOKEN) == calls
    # About 08:10 China time now; the count restarts at 00:00 China time (16:00 UTC). The
    # clocks also move with the wall clock: a minute's margin, however slow the machine.
    day_end = credentials.china_day_end(clock())
    assert day_end - clock() > 15 * 3600
    advance(emu, clock, day_end - clock() - 60)
    with pytest.raises(credentials.ForceRefused):
        hosts[1].force_refresh_token()
    advance(emu, clock, 61)
    assert hosts[1].force_refresh_token() not in seen
    assert hosts[0].credentials.force_status(TOKEN)["today"] == 1


def test_the_forced_token_reaches_another_workers_memory_within_seconds(db_path, emu, clock):
    a, b = worker(db_path, emu, clock), worker(db_path, emu, clock)
    old = b.access_token()
    forced = a.force_refresh_token()
    calls = emu.counters()
    advance(emu, clock, credentials.REVALIDATE_EVERY / 2)
    assert b.access_token() == old  # memory is trusted for a few seconds
    advance(emu, clock, credentials.REVALIDATE_EVERY / 2)
    assert b.access_token() == forced
    assert emu.counters() == calls  # followed the store: no WeChat call


def test_a_worker_still_using_the_retired_token_moves_to_the_new_one(db_path, emu, clock):
    a, b = worker(db_path, emu, clock), worker(db_path, emu, clock)
    b.access_token()
    forced = a.force_refresh_token()
    advance(emu, clock, protocol.CLASSIC_TOKEN_GRACE + 1)  # the old one is dead now
    used = []
    assert b.with_token(
        lambda t: used.append(t)
        or b.http.get_json(protocol.TICKET, {"access_token": t, "type": "jsapi"})
    )["ticket"]
    assert used[-1] == forced


def test_a_forced_fetch_waits_for_the_lease_and_spends_nothing_if_it_cannot_have_it(
    db_path, emu, clock
):
    w = worker(db_path, emu, clock, wait=0.2, poll=0.02)
    w.access_token()
    now = clock()
    assert store.CredentialStore(db_path).acquire(APPID, TOKEN, "other", now, now + 60)
    with pytest.raises(WeChatError, match="timed out waiting"):
        w.force_refresh_token()
    assert w.credentials.force_status(TOKEN)["today"] == 0
    assert emu.count(protocol.STABLE_TOKEN) == 1


def test_wechat_refusing_a_force_keeps_the_stored_token(db_path, emu, clock):
    w = worker(db_path, emu, clock)
    token = w.access_token()
    emu.fault(protocol.STABLE_TOKEN, errcode=45011)
    with pytest.raises(WeChatError) as refused:
        w.force_refresh_token()
    assert refused.value.errcode == 45011
    assert w.access_token() == token
    assert store.CredentialStore(db_path).read(APPID, TOKEN).value == token


def test_classic_mode_has_nothing_to_force(db_path, emu, clock):
    with pytest.raises(ValueError):
        worker(db_path, emu, clock, token_api="classic").force_refresh_token()
