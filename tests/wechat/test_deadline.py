"""The total deadline of a WeChat call holds in the middle of a read (RELIABILITY 33, 47).

The real client against the real emulator over HTTP: the emulator drips the answer's body
(a few bytes at a time) so that no per-recv timeout ever fires; only a budget on the whole
call can end it.
"""

import http.server
import os
import socket
import threading
import time

import pytest
import requests

from wxsite import store
from wxsite.emulator.testing import Control
from wxsite.wechat import MediaTooLarge, WeChatClient, WeChatError, protocol
from wxsite.wechat.http import Transport, within
from wxsite.wechat.media import save_stream

APPID, SECRET = protocol.EMULATOR_APPID, protocol.EMULATOR_SECRET
DEADLINE = 2.0
#: A made-up media answer far beyond any cap and any socket buffer (generated as sent).
HUGE = 200_000_000
#: Generous: the call must end near its deadline, far before the drip would have finished.
ENDED_BY = DEADLINE + 4.0
JPEG = b"\xff\xd8\xff\xe0" + b"\x00\x10JFIF" + bytes(range(256)) * 12 + b"\xff\xd9"


@pytest.fixture
def emu(emulator_server):
    control = Control(emulator_server.base_url)
    control.reset()
    yield control
    # Later tests must not meet a leftover endless drip.
    control.clear_faults()


@pytest.fixture
def make_client(tmp_path, emulator_server):
    def make(token_api="stable", deadline=DEADLINE):
        db_path = str(tmp_path / "creds.sqlite3")
        db = store.connect(db_path)
        store.migrate(db)
        db.close()
        return WeChatClient(
            APPID,
            SECRET,
            store.CredentialStore(db_path),
            api_base=emulator_server.base_url,
            open_base=emulator_server.base_url,
            token_api=token_api,
            read_timeout=5.0,
            deadline=deadline,
        )

    return make


def assert_cut(emu, path):
    """The emulator did not get to send the whole body: the caller hung up first."""
    delivery = emu.settled_delivery(path)
    assert delivery["state"] == "cut", delivery
    assert delivery["sent"] < delivery["length"], delivery


@pytest.mark.parametrize(
    "token_api, path", [("stable", protocol.STABLE_TOKEN), ("classic", protocol.TOKEN)]
)
def test_dripping_token_fetch_ends_at_the_deadline(emu, make_client, token_api, path):
    wechat = make_client(token_api)
    # About 170 bytes at 10 bytes a second: 17 s, each byte well inside the read timeout.
    emu.fault(path, count=-1, drip=0.1)
    started = time.monotonic()
    with pytest.raises(WeChatError) as raised:
        wechat.access_token()
    elapsed = time.monotonic() - started
    assert raised.value.unavailable and raised.value.path == path
    assert DEADLINE - 0.2 < elapsed < ENDED_BY
    assert_cut(emu, path)
    # The credential lease was released: the next fetch goes through at once.
    emu.clear_faults()
    started = time.monotonic()
    assert wechat.access_token()
    assert time.monotonic() - started < ENDED_BY


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_dripping_media_download_ends_at_the_deadline_without_a_file(
    emu, make_client, tmp_path, chunked
):
    wechat = make_client()
    wechat.access_token()
    media_id = emu.add_media(JPEG)
    # 3 KB at 80 bytes a second: 40 s.
    emu.fault(protocol.MEDIA_GET, count=-1, drip=0.1, drip_bytes=8, chunked=chunked)
    directory = tmp_path / "media"
    directory.mkdir()
    started = time.monotonic()
    with pytest.raises(WeChatError) as raised:
        wechat.download_media(media_id, str(directory), max_bytes=1_000_000)
    assert time.monotonic() - started < ENDED_BY
    assert raised.value.unavailable and not isinstance(raised.value, MediaTooLarge)
    assert os.listdir(directory) == []  # no .part-* file left
    assert_cut(emu, protocol.MEDIA_GET)


def test_chunked_media_over_the_cap_is_refused_mid_stream(emu, make_client, tmp_path):
    wechat = make_client(deadline=10.0)
    wechat.access_token()
    media_id = emu.add_media(JPEG)
    # No Content-Length to refuse up front: only counting the bytes as they come stops it.
    emu.fault(protocol.MEDIA_GET, chunked=True, size=HUGE)
    directory = tmp_path / "media"
    directory.mkdir()
    with pytest.raises(MediaTooLarge):
        wechat.download_media(media_id, str(directory), max_bytes=300_000)
    assert os.listdir(directory) == []
    delivery = emu.settled_delivery(protocol.MEDIA_GET)
    # Socket buffers (tens of MB on loopback) take some of it, never all of it.
    assert delivery["state"] == "cut" and delivery["sent"] < HUGE / 2, delivery


def test_chunked_media_under_the_cap_is_kept(emu, make_client, tmp_path):
    wechat = make_client()
    media_id = emu.add_media(JPEG)
    emu.fault(protocol.MEDIA_GET, chunked=True, size=200_000)
    directory = tmp_path / "media"
    directory.mkdir()
    download = wechat.download_media(media_id, str(directory), max_bytes=300_000)
    assert download.size == 200_000 and download.head == JPEG[:64]
    assert os.path.getsize(download.tmp_path) == 200_000
    download.discard()
    assert os.listdir(directory) == []


def _stream(emulator_server, emu, deadline):
    transport = Transport(emulator_server.base_url, read_timeout=5.0, deadline=deadline)
    token = requests.get(
        emulator_server.base_url + protocol.TOKEN,
        params={"grant_type": "client_credential", "appid": APPID, "secret": SECRET},
        timeout=5,
    ).json()["access_token"]
    media_id = emu.add_media(JPEG)
    return transport.stream(protocol.MEDIA_GET, {"access_token": token, "media_id": media_id})


def test_the_downloads_own_deadline_holds_mid_read(emulator_server, emu, tmp_path):
    # The transport would allow 30 s; save_stream's deadline is the one that must hold.
    emu.fault(protocol.MEDIA_GET, drip=0.1, drip_bytes=8)
    response = _stream(emulator_server, emu, deadline=30.0)
    started = time.monotonic()
    with pytest.raises(WeChatError) as raised:
        save_stream(response, str(tmp_path), 1_000_000, started + DEADLINE, protocol.MEDIA_GET)
    assert time.monotonic() - started < ENDED_BY
    assert raised.value.unavailable and os.listdir(tmp_path) == []
    assert_cut(emu, protocol.MEDIA_GET)


def test_the_downloads_own_deadline_holds_between_chunks_of_any_response(
    emulator_server, emu, tmp_path
):
    # A response that did not come through a Transport: only the checks between chunks hold.
    emu.fault(protocol.MEDIA_GET, drip=0.1, drip_bytes=8, chunked=True)
    token = requests.get(
        emulator_server.base_url + protocol.TOKEN,
        params={"grant_type": "client_credential", "appid": APPID, "secret": SECRET},
        timeout=5,
    ).json()["access_token"]
    response = requests.get(
        emulator_server.base_url + protocol.MEDIA_GET,
        params={"access_token": token, "media_id": emu.add_media(JPEG)},
        stream=True,
        timeout=5,
    )
    started = time.monotonic()
    with pytest.raises(WeChatError):
        save_stream(response, str(tmp_path), 1_000_000, started + DEADLINE, protocol.MEDIA_GET)
    assert time.monotonic() - started < ENDED_BY
    assert os.listdir(tmp_path) == []
    assert_cut(emu, protocol.MEDIA_GET)


def dripping_exchange(emu):
    """Return a fresh authorization code whose exchange the emulator will drip."""
    location = emu.authorize(
        f"{protocol.AUTHORIZE}?appid={APPID}&redirect_uri=http%3A%2F%2F127.0.0.1%3A5000%2Fcb"
        "&response_type=code&scope=snsapi_base&state=abc"
    )
    emu.fault(protocol.SNS_ACCESS_TOKEN, count=-1, drip=0.1)
    return location.split("code=")[1].split("&")[0]


def test_authlib_requests_hold_the_deadline_on_a_mounted_session(emu, make_client):
    wechat = make_client()
    code = dripping_exchange(emu)
    with wechat.oauth_session() as session:
        wechat.http.mount(session)
        started = time.monotonic()
        with pytest.raises(WeChatError) as raised:
            session.fetch_token(code=code)
    assert time.monotonic() - started < ENDED_BY
    assert raised.value.unavailable
    assert_cut(emu, protocol.SNS_ACCESS_TOKEN)


def test_the_code_exchange_holds_the_deadline_mid_read(emu, make_client):
    # Through the client's own path (no mount by the caller): Authlib's session is mounted.
    wechat = make_client()
    code = dripping_exchange(emu)
    started = time.monotonic()
    with pytest.raises(WeChatError) as raised:
        wechat.exchange_code(code)
    assert time.monotonic() - started < ENDED_BY
    assert raised.value.unavailable
    assert_cut(emu, protocol.SNS_ACCESS_TOKEN)


class DrippingServer:
    """A raw HTTP server that sends its status line and headers one byte at a time."""

    def __init__(self, every=0.1):
        self.every = every
        self.sent = 0
        self.gone = threading.Event()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        try:
            conn, _ = self.listener.accept()
        except OSError:  # closed before anyone called
            return
        with conn:
            conn.recv(65536)
            body = b'{"errcode": 0, "errmsg": "ok"}'
            answer = (
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
            )
            try:
                for byte in answer:
                    conn.sendall(bytes([byte]))
                    self.sent += 1
                    time.sleep(self.every)
            except OSError:
                self.gone.set()

    def close(self):
        self.listener.close()
        self.thread.join(timeout=30)


def test_a_server_dripping_its_headers_is_cut_at_the_deadline():
    server = DrippingServer()
    try:
        transport = Transport(server.url, read_timeout=5.0, deadline=DEADLINE)
        started = time.monotonic()
        with pytest.raises(WeChatError) as raised:
            transport.get_json("/sns/auth", {})
        assert time.monotonic() - started < ENDED_BY
        assert raised.value.unavailable
        assert server.gone.wait(5) and server.sent < 60  # still in the headers
    finally:
        server.close()


def test_within_bounds_a_mounted_session_of_another_client(emulator_server, emu):
    # What a client with its own requests session (WeChat Pay's) gets from the transport.
    emu.fault(protocol.TOKEN, drip=0.1)
    params = {"grant_type": "client_credential", "appid": APPID, "secret": SECRET}
    with Transport.mount(requests.Session()) as session:
        started = time.monotonic()
        with pytest.raises(requests.RequestException), within(DEADLINE):
            session.get(emulator_server.base_url + protocol.TOKEN, params=params, timeout=5)
        assert time.monotonic() - started < ENDED_BY
        assert session.get(emulator_server.base_url + protocol.TOKEN, params=params).ok
    assert_cut(emu, protocol.TOKEN)


def test_budgets_stay_with_their_own_calls_across_threads(emulator_server, emu):
    transport = Transport(emulator_server.base_url, read_timeout=5.0, deadline=DEADLINE)
    emu.fault(protocol.TICKET, count=-1, drip=0.1)
    params = {"grant_type": "client_credential", "appid": APPID, "secret": SECRET}
    outcomes = {}

    def call(name, path, params):
        started = time.monotonic()
        try:
            transport.get_json(path, params)
            outcomes[name] = ("ok", time.monotonic() - started)
        except WeChatError as exc:
            outcomes[name] = ("unavailable" if exc.unavailable else exc.errcode, 0)

    threads = [
        threading.Thread(target=call, args=(f"slow{i}", protocol.TICKET, {"type": "jsapi"}))
        for i in range(3)
    ] + [threading.Thread(target=call, args=(f"fast{i}", protocol.TOKEN, params)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(ENDED_BY + 5)
    assert {outcomes[f"slow{i}"][0] for i in range(3)} == {"unavailable"}
    assert {outcomes[f"fast{i}"][0] for i in range(6)} == {"ok"}
    assert max(outcomes[f"fast{i}"][1] for i in range(6)) < DEADLINE


class KeepAliveHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    connections = []

    def setup(self):
        super().setup()
        self.connections.append(self.client_address)

    def do_GET(self):
        body = b'{"errcode": 0, "errmsg": "ok"}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_pooled_connections_are_reused_between_budgeted_calls():
    KeepAliveHandler.connections = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), KeepAliveHandler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        transport = Transport(f"http://127.0.0.1:{server.server_port}", deadline=DEADLINE)
        for _ in range(3):
            assert transport.get_json("/sns/auth", {}) == {"errcode": 0, "errmsg": "ok"}
        # One socket for all three: the budgeted reader leaves pooled connections usable.
        assert len(KeepAliveHandler.connections) == 1
        transport.session.close()
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
