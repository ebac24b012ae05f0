"""Serving: start/shutdown on a real port, and concurrent callers (site workers)."""

import socket
from concurrent.futures import ThreadPoolExecutor

import requests

from wxsite.emulator.server import start
from wxsite.wechat import protocol

from .conftest import APPID, SECRET


def test_start_serves_on_a_free_port_and_shutdown_releases_it():
    running = start(quiet=True)
    try:
        assert running.base_url == f"http://127.0.0.1:{running.port}"
        assert requests.get(running.base_url + "/_emu/counters", timeout=5).status_code == 200
    finally:
        running.shutdown()
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", running.port)) != 0


def test_concurrent_stable_token_calls_share_one_token(emulator):
    payload = {"grant_type": "client_credential", "appid": APPID, "secret": SECRET}

    def fetch(_):
        with requests.Session() as http:
            r = http.post(emulator.url(protocol.STABLE_TOKEN), json=payload, timeout=10)
            return r.json()["access_token"]

    with ThreadPoolExecutor(8) as pool:
        tokens = set(pool.map(fetch, range(40)))
    assert len(tokens) == 1
    assert emulator.control.counters()[protocol.STABLE_TOKEN] == 40


def test_concurrent_codes_are_each_spent_once(emulator):
    codes = [emulator.login() for _ in range(5)]
    params = {"appid": APPID, "secret": SECRET, "grant_type": "authorization_code"}

    def exchange(code):
        with requests.Session() as http:
            url = emulator.url(protocol.SNS_ACCESS_TOKEN)
            return http.get(url, params=dict(params, code=code), timeout=10).json()

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(exchange, codes * 4))
    assert sum("access_token" in r for r in results) == 5
    assert sum(r.get("errcode") == protocol.CODE_USED for r in results) == 15
