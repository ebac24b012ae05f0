"""The site under credential faults (RELIABILITY 43, 60, 61): pages, not just the client.

Two apps over one database stand for two gunicorn workers: each has its own WeChat client
and memory cache, and they share only the SQLite file.
"""

import time

import pytest

from support import LiveServer, site_config, wechat_login
from wxsite import create_app
from wxsite.wechat import credentials, protocol


class Clock:
    def __init__(self):
        self.offset = 0.0

    def __call__(self):
        return time.time() + self.offset


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def workers(tmp_path, emu, clock):
    """Two apps (workers) over one database, on the same controllable clock."""
    return [create_app(site_config(tmp_path, emu, WXSITE_CLOCK=clock)) for _ in range(2)]


def test_40001_from_the_token_endpoint_is_a_configuration_error_asked_once(workers, emu, caplog):
    path = protocol.STABLE_TOKEN
    emu.fault(path, count=-1, errcode=protocol.INVALID_CREDENTIAL)
    clients = [w.test_client() for w in workers]
    for i in range(10):  # 10 page views over both workers
        response = clients[i % 2].get("/jssdk/config", query_string={"url": "http://localhost/"})
        assert response.status_code == 503
        assert "服务配置错误" in response.get_json()["message"]
    assert emu.count(path) == 1  # the daily quota is not burnt
    assert "WX_SECRET is wrong (40001" in caplog.text
    assert protocol.EMULATOR_SECRET not in caplog.text


def test_40001_on_the_code_exchange_is_a_configuration_error_remembered_across_workers(
    workers, emu, phone, caplog
):
    emu.fault(protocol.SNS_ACCESS_TOKEN, count=-1, errcode=protocol.INVALID_CREDENTIAL)
    servers = [LiveServer(w) for w in workers]
    try:
        for server in servers * 2:
            phone.cookies.clear()
            response = wechat_login(phone, server)
            assert response.status_code == 503
            assert "服务配置错误" in response.text and "微信服务暂时不可用" not in response.text
    finally:
        for server in servers:
            server.shutdown()
    assert emu.count(protocol.SNS_ACCESS_TOKEN) == 1
    assert "WX_SECRET is wrong (40001 from /sns/oauth2/access_token" in caplog.text
    assert protocol.EMULATOR_SECRET not in caplog.text


def test_pages_keep_working_while_the_ticket_refresh_fails(workers, emu, clock, phone):
    server = LiveServer(workers[0])
    try:
        wechat_login(phone, server)
        assert phone.get(server.url("/share")).status_code == 200
        clock.offset = protocol.TICKET_LIFETIME - 120  # the ticket's last 5 minutes
        emu.fault(protocol.TICKET, count=-1, errcode=protocol.QUOTA_REACHED)
        for _ in range(5):
            assert phone.get(server.url("/share")).status_code == 200
        other = workers[1].test_client()
        ok = other.get("/jssdk/config", query_string={"url": "http://localhost/"})
        assert ok.status_code == 200
        assert emu.count(protocol.TICKET) == 2  # the first fetch, one failed refresh
        emu.clear_faults()
        clock.offset += credentials.ERROR_BACKOFF + 1
        assert phone.get(server.url("/share")).status_code == 200
        assert emu.count(protocol.TICKET) == 3
    finally:
        server.shutdown()
