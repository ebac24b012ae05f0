"""Faults that shape the answer's body: drip, chunked, size; and /_emu/deliveries."""

import logging
import os
import socket
import subprocess
import time

import pytest
import requests

from wxsite.emulator import create_emulator
from wxsite.emulator.server import start
from wxsite.wechat import protocol

from .conftest import APPID, SECRET

TOKEN_PARAMS = {"grant_type": "client_credential", "appid": APPID, "secret": SECRET}
STABLE_BODY = dict(TOKEN_PARAMS, force_refresh=False)
JPEG = b"\xff\xd8\xff\xe0" + b"\x00\x10JFIF" + bytes(range(256)) * 4 + b"\xff\xd9"


def media_params(emulator, data=JPEG):
    media_id = emulator.control.add_media(data)
    return {"access_token": emulator.token(), "media_id": media_id}


def test_drip_sends_the_normal_answer_slowly_and_whole(emulator):
    emulator.control.fault(protocol.STABLE_TOKEN, drip=0.05, drip_bytes=40)
    started = time.monotonic()
    r = emulator.post(protocol.STABLE_TOKEN, json=STABLE_BODY)
    elapsed = time.monotonic() - started
    body = r.json()
    assert "access_token" in body and r.headers["Content-Length"] == str(len(r.content))
    pieces = -(-len(r.content) // 40)
    assert elapsed >= 0.05 * (pieces - 1)
    # The client may hold the last byte before the emulator's thread records "done".
    assert emulator.control.settled_delivery(protocol.STABLE_TOKEN) == {
        "path": protocol.STABLE_TOKEN,
        "length": len(r.content),
        "sent": len(r.content),
        "state": "done",
    }
    assert len(emulator.control.deliveries()) == 1


def test_drip_goes_with_an_errcode(emulator):
    emulator.control.fault(protocol.TICKET, errcode=-1, drip=0.01, drip_bytes=5)
    r = emulator.get(protocol.TICKET, params={"access_token": "x", "type": "jsapi"})
    assert r.json() == {"errcode": -1, "errmsg": "system error"}
    assert emulator.control.deliveries(protocol.TICKET)[0]["state"] == "done"


def test_a_caller_leaving_a_drip_cuts_it(emulator):
    emulator.control.fault(protocol.MEDIA_GET, drip=0.05)
    params = media_params(emulator)
    with emulator.http.get(emulator.url(protocol.MEDIA_GET), params=params, stream=True) as r:
        assert r.headers["Content-Length"] == str(len(JPEG))
        assert r.raw.read(3) == JPEG[:3]
    delivery = emulator.control.settled_delivery(protocol.MEDIA_GET)
    assert delivery["state"] == "cut" and delivery["length"] == len(JPEG)
    assert 3 <= delivery["sent"] < len(JPEG)


def test_chunked_media_has_no_content_length(emulator):
    emulator.control.fault(protocol.MEDIA_GET, chunked=True)
    r = emulator.get(protocol.MEDIA_GET, params=media_params(emulator))
    assert r.content == JPEG
    assert "Content-Length" not in r.headers and r.headers["Transfer-Encoding"] == "chunked"
    assert r.headers["Content-Type"] == "image/jpeg"


def test_size_pads_a_media_answer_with_zero_bytes(emulator):
    emulator.control.fault(protocol.MEDIA_GET, size=3_000_000, chunked=True)
    r = emulator.get(protocol.MEDIA_GET, params=media_params(emulator))
    assert len(r.content) == 3_000_000 and "Content-Length" not in r.headers
    assert r.content.startswith(JPEG) and r.content[len(JPEG) :] == bytes(3_000_000 - len(JPEG))
    assert emulator.control.deliveries()[-1] == {
        "path": protocol.MEDIA_GET,
        "length": 3_000_000,
        "sent": 3_000_000,
        "state": "done",
    }


def test_size_cuts_a_media_answer_and_declares_it(emulator):
    emulator.control.fault(protocol.MEDIA_GET, size=10)
    r = emulator.get(protocol.MEDIA_GET, params=media_params(emulator))
    assert r.content == JPEG[:10] and r.headers["Content-Length"] == "10"


def test_size_leaves_json_errors_alone(emulator):
    emulator.control.fault(protocol.MEDIA_GET, size=1000, chunked=True)
    r = emulator.get(protocol.MEDIA_GET, params={"access_token": emulator.token(), "media_id": "x"})
    assert r.json()["errcode"] == protocol.INVALID_MEDIA_ID


def test_body_shapes_are_listed_and_reset(emulator):
    control = emulator.control
    control.fault(protocol.MEDIA_GET, drip=0.5, drip_bytes=16, chunked=True, size=100)
    assert control.faults() == [
        {
            "path": protocol.MEDIA_GET,
            "count": 1,
            "drip": 0.5,
            "size": 100,
            "drip_bytes": 16,
            "chunked": True,
        }
    ]
    control.clear_faults()
    control.fault(protocol.TICKET, chunked=True)
    emulator.get(protocol.TICKET, params={"access_token": "x", "type": "jsapi"})
    assert len(control.deliveries()) == 1
    control.reset()
    assert control.deliveries() == [] and control.faults() == []


@pytest.mark.parametrize(
    "payload",
    [
        {"drip": 0},
        {"drip": -1},
        {"drip": 61},
        {"drip": "1"},
        {"drip_bytes": 4},
        {"drip": 0.1, "drip_bytes": 0},
        {"drip": 0.1, "drip_bytes": 1.5},
        {"chunked": "yes"},
        {"chunked": False},
        {"size": 10},
        {"path": protocol.MEDIA_GET, "size": -1},
        {"path": protocol.MEDIA_GET, "size": 2**31},
        {"path": protocol.MEDIA_GET, "size": True},
    ],
)
def test_bad_body_shapes_are_refused(emulator, payload):
    r = emulator.post("/_emu/faults", json={"path": protocol.TOKEN, **payload})
    assert r.status_code == 400 and r.json()["error"]
    assert emulator.control.faults() == []


def test_access_lines_show_no_query_strings(caplog):
    running = start(create_emulator())  # not quiet: werkzeug logs every request
    try:
        with caplog.at_level(logging.INFO, logger="werkzeug"):
            requests.get(running.base_url + protocol.TOKEN, params=TOKEN_PARAMS, timeout=10)
    finally:
        running.shutdown()
    lines = [r.getMessage() for r in caplog.records if r.name == "werkzeug"]
    assert any(f'"GET {protocol.TOKEN} HTTP/1.1" 200' in line for line in lines), lines
    assert not any(SECRET in line or "?" in line for line in lines), lines


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_the_emulator_run_alone_logs_no_secrets(tmp_path):
    import sys

    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    port = _free_port()
    env = dict(
        os.environ,
        SECRET_KEY="emulator-alone-secret-key-0123456789abcdef",
        WXSITE_DOTENV=str(tmp_path / "no.env"),
        WXSITE_DATABASE=str(tmp_path / "wxsite.sqlite3"),
        WXSITE_UPLOADS=str(tmp_path / "uploads"),
        WXSITE_INSTANCE=str(tmp_path / "instance"),
    )
    flask = os.path.join(os.path.dirname(sys.executable), "flask")
    state = str(tmp_path / "emulator.sqlite3")
    log = open(tmp_path / "emulator.log", "wb")
    proc = subprocess.Popen(
        # Its state file in the temp dir: the default is the checkout's instance/ folder.
        [flask, "--app", "wsgi", "wx", "emulator", "--port", str(port), "--state", state],
        cwd=root,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                token = requests.get(base + protocol.TOKEN, params=TOKEN_PARAMS, timeout=1)
                break
            except requests.ConnectionError:
                assert proc.poll() is None, (tmp_path / "emulator.log").read_text()
                time.sleep(0.1)
        access_token = token.json()["access_token"]
        requests.get(
            base + protocol.TICKET,
            params={"access_token": access_token, "type": "jsapi"},
            timeout=5,
        )
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()
    output = (tmp_path / "emulator.log").read_text(errors="replace")
    assert protocol.TOKEN in output and protocol.TICKET in output, output
    assert SECRET not in output and access_token not in output, output
    assert f"emulator state: {state} (new; --reset starts clean)" in output
    assert os.path.exists(state)  # and not the checkout's instance/emulator.sqlite3
