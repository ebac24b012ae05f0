"""Real gunicorn (wxsite/gunicorn_conf.py, gthread): refused bodies, keep-alive, its control socket.

A body the site refuses before reading it (CSRF, 413) used to end in a TCP reset for a
client still sending it: gunicorn 27 drains at most 64 KB of an unread body, then closes
the connection while the rest arrives, and the client's next segments meet a RST.
"""

import os
import random
import socket
import time

import pytest

from stack import EmulatorProcess, Gunicorn

pytestmark = pytest.mark.slow

#: Like a phone's uplink rather than loopback: 16 KB every 2 ms.
CHUNK, PAUSE = 16 * 1024, 0.002


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    return tmp_path_factory.mktemp("home")


@pytest.fixture(scope="module")
def site(tmp_path_factory, home):
    emulator = EmulatorProcess()
    work = tmp_path_factory.mktemp("gunicorn")
    server = Gunicorn(str(work), emulator.base_url, workers=1, threads=2, env={"HOME": str(home)})
    yield server
    server.stop()
    emulator.stop()


def send_paced(sock, data):
    for start in range(0, len(data), CHUNK):
        sock.sendall(data[start : start + CHUNK])
        time.sleep(PAUSE)


def read_response(sock):
    """Return (status line, headers, body) of one HTTP/1.1 response with a Content-Length."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, "connection closed before the response"
        data += chunk
    head, body = data.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
    while len(body) < int(headers["content-length"]):
        chunk = sock.recv(65536)
        assert chunk, "connection closed inside the response"
        body += chunk
    return lines[0], headers, body


def post(path, body, content_type="application/json"):
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {content_type}\r\n"
        f"Accept: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


CASES = [
    # (path, body size, status): refused by CSRF before the body is read, or too large (413).
    *[("/auth/logout", size, 400) for size in random.Random(11).sample(range(150_000, 900_000), 8)],
    *[("/upload", size, 400) for size in (120_000, 200_000)],
    *[("/pay/notify", size, 413) for size in (1_100_000, 1_900_000)],
]


def test_refused_large_bodies_get_their_answer_on_a_kept_alive_connection(site):
    sock = socket.create_connection(("127.0.0.1", site.port), timeout=20)
    try:
        for path, size, status in CASES:
            try:
                send_paced(sock, post(path, b"{" + b" " * (size - 2) + b"}"))
            except (BrokenPipeError, ConnectionResetError) as exc:
                pytest.fail(f"{path} with {size} bytes: {type(exc).__name__} while sending")
            line, headers, body = read_response(sock)
            assert line.split(" ")[1] == str(status), (path, size, line)
            assert headers.get("connection", "").lower() != "close"
            # The site's JSON error (WeChat Pay's FAIL shape on its notify URL), not a reset.
            assert b'"error"' in body or b'"code":"FAIL"' in body
        # Small refused bodies too; then the same connection still serves the next request.
        for _ in range(3):
            sock.sendall(post("/auth/logout", b'{"a": 1}'))
            assert read_response(sock)[0].split(" ")[1] == "400"
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert read_response(sock)[0].split(" ")[1] == "200"
    finally:
        sock.close()


def test_no_shared_control_socket_under_home(site, home):
    # gunicorn 25.1+ would put one at ~/.gunicorn/gunicorn.ctl for every instance of a user.
    assert not os.path.exists(os.path.join(home, ".gunicorn"))
    assert "control" not in site.log().lower()
