"""The control API: faults, counters, clock, reset, users, events, CORS."""

import json
import time

import pytest
import requests

from wxsite.wechat import protocol

from .conftest import APPID, SECRET, auth_link

TOKEN_PARAMS = {"grant_type": "client_credential", "appid": APPID, "secret": SECRET}


def call_token(emulator, **kwargs):
    return emulator.get(protocol.TOKEN, params=TOKEN_PARAMS, **kwargs)


def test_errcode_fault_applies_count_times(emulator):
    emulator.control.fault(protocol.TOKEN, count=2, errcode=-1)
    for _ in range(2):
        r = call_token(emulator)
        assert r.status_code == 200
        assert r.json() == {"errcode": -1, "errmsg": "system error"}
    assert "access_token" in call_token(emulator).json()
    assert emulator.control.faults() == []


def test_errcode_fault_with_custom_errmsg(emulator):
    emulator.control.fault(protocol.TOKEN, errcode=45009, errmsg="quota")
    assert call_token(emulator).json() == {"errcode": 45009, "errmsg": "quota"}


def test_status_fault_answers_a_gateway_page(emulator):
    emulator.control.fault(protocol.STABLE_TOKEN, status=502)
    r = emulator.post(protocol.STABLE_TOKEN, json=dict(TOKEN_PARAMS, force_refresh=False))
    assert r.status_code == 502
    assert r.headers["Content-Type"].startswith("text/html")
    assert "502 Bad Gateway" in r.text
    r = emulator.post(protocol.STABLE_TOKEN, json=dict(TOKEN_PARAMS, force_refresh=False))
    assert "access_token" in r.json()


def test_stall_fault_delays_then_answers_normally(emulator):
    emulator.control.fault(protocol.TOKEN, stall=0.4)
    started = time.monotonic()
    assert "access_token" in call_token(emulator).json()
    assert time.monotonic() - started >= 0.4
    started = time.monotonic()
    call_token(emulator)
    assert time.monotonic() - started < 0.3


def test_stall_makes_client_timeouts_fire(emulator):
    # A call that changes nothing: the stalled request finishes after this test ends.
    emulator.control.fault(protocol.TICKET, stall=0.5)
    with pytest.raises(requests.Timeout):
        emulator.get(protocol.TICKET, params={"access_token": "x"}, timeout=0.1)


def test_body_fault_sends_raw_text(emulator):
    emulator.control.fault(protocol.TICKET, body='{"errcode": 0, "tick')
    token = emulator.token()
    r = emulator.get(protocol.TICKET, params={"access_token": token, "type": "jsapi"})
    assert r.status_code == 200 and r.text == '{"errcode": 0, "tick'
    assert r.headers["Content-Type"] == "application/json"


def test_body_fault_with_content_type(emulator):
    emulator.control.fault(protocol.MEDIA_GET, body="<html>oops</html>", content_type="text/html")
    r = emulator.get(protocol.MEDIA_GET, params={"access_token": "x", "media_id": "y"})
    assert r.text == "<html>oops</html>" and r.headers["Content-Type"].startswith("text/html")


def test_faults_apply_in_order_per_path(emulator):
    control = emulator.control
    control.fault(protocol.TOKEN, errcode=-1)
    control.fault(protocol.TICKET, errcode=40001)
    control.fault(protocol.TOKEN, status=503)
    assert [f["path"] for f in control.faults()] == [
        protocol.TOKEN,
        protocol.TICKET,
        protocol.TOKEN,
    ]
    assert call_token(emulator).json()["errcode"] == -1
    assert call_token(emulator).status_code == 503
    assert "access_token" in call_token(emulator).json()
    assert control.faults() == [{"path": protocol.TICKET, "count": 1, "errcode": 40001}]


def test_endless_fault_until_cleared(emulator):
    emulator.control.fault(protocol.TOKEN, count=-1, errcode=-1)
    for _ in range(3):
        assert call_token(emulator).json()["errcode"] == -1
    assert emulator.control.faults()[0]["count"] == -1
    emulator.control.clear_faults()
    assert "access_token" in call_token(emulator).json()


def test_fault_on_authorize_and_jssdk_paths(emulator):
    emulator.control.fault(protocol.AUTHORIZE, status=500)
    assert emulator.get(auth_link()).status_code == 500
    emulator.control.fault("/_emu/jssdk/upload", errcode=-1)
    assert emulator.post("/_emu/jssdk/upload", data={"kind": "voice"}).json()["errcode"] == -1


@pytest.mark.parametrize(
    "payload",
    [
        {"path": "/cgi-bin/nope", "errcode": -1},
        {"path": protocol.TOKEN},
        {"path": protocol.TOKEN, "errcode": -1, "status": 502},
        {"path": protocol.TOKEN, "errcode": "x"},
        {"path": protocol.TOKEN, "status": 200},
        {"path": protocol.TOKEN, "stall": -1},
        {"path": protocol.TOKEN, "stall": "1"},
        {"path": protocol.TOKEN, "errcode": -1, "count": 0},
        {"path": protocol.TOKEN, "errcode": -1, "count": True},
        {"path": protocol.TOKEN, "body": 5},
    ],
)
def test_bad_fault_requests_are_refused(emulator, payload):
    r = emulator.post("/_emu/faults", json=payload)
    assert r.status_code == 400 and r.json()["error"]
    assert emulator.control.faults() == []


def test_counters_count_every_call_including_faulted_ones(emulator):
    counters = emulator.control.counters()
    assert set(counters) >= {
        protocol.AUTHORIZE,
        protocol.SNS_ACCESS_TOKEN,
        protocol.TOKEN,
        protocol.STABLE_TOKEN,
        protocol.TICKET,
        protocol.MEDIA_GET,
    }
    assert set(counters.values()) == {0}
    emulator.control.fault(protocol.TOKEN, errcode=-1)
    assert call_token(emulator).json()["errcode"] == -1
    token = emulator.token()
    emulator.get(protocol.TICKET, params={"access_token": token, "type": "jsapi"})
    counters = emulator.control.counters()
    assert counters[protocol.TOKEN] == 2
    assert counters[protocol.TICKET] == 1
    assert counters[protocol.STABLE_TOKEN] == 0
    emulator.control.reset_counters()
    assert emulator.control.counters()[protocol.TOKEN] == 0


def test_control_calls_are_not_counted(emulator):
    emulator.control.users()
    emulator.control.clock()
    assert sum(emulator.control.counters().values()) == 0


def test_clock_advance_and_offset(emulator):
    before = emulator.control.clock()
    assert before["offset"] == 0 and abs(before["now"] - time.time()) < 5
    after = emulator.control.advance(3600)
    assert after["offset"] == 3600 and after["now"] - before["now"] >= 3600
    r = emulator.post("/_emu/clock", json={"offset": 10})
    assert r.json()["offset"] == 10
    assert emulator.post("/_emu/clock", json={}).status_code == 400
    assert emulator.post("/_emu/clock", json={"advance": "soon"}).status_code == 400


def test_reset_forgets_everything(emulator):
    control = emulator.control
    token = emulator.token()
    control.fault(protocol.TOKEN, errcode=-1)
    control.advance(100)
    control.set_follows("lisi", [APPID])
    emulator.post("/_emu/events", json={"api": "chooseImage", "ok": True})
    control.reset()
    assert control.faults() == [] and control.events() == []
    assert control.clock()["offset"] == 0
    assert sum(control.counters().values()) == 0
    assert control.users()["lisi"]["follows"] == []
    r = emulator.get(protocol.TICKET, params={"access_token": token, "type": "jsapi"})
    assert r.json()["errcode"] == protocol.INVALID_CREDENTIAL


def test_users_control(emulator):
    users = emulator.control.users()
    assert set(users["zhangsan"]) >= {"key", "nickname", "unionid", "openids", "follows"}
    r = emulator.post("/_emu/users/zhangsan", json={"follows": []})
    assert r.json()["follows"] == []
    assert emulator.post("/_emu/users/ghost", json={"follows": []}).status_code == 404
    assert emulator.post("/_emu/users/lisi", json={"follows": ["wxnope"]}).status_code == 400
    assert emulator.post("/_emu/users/lisi", json={"follows": APPID}).status_code == 400


def test_revoke_needs_a_known_appid(emulator):
    assert emulator.post("/_emu/tokens/revoke", json={"appid": "nope"}).status_code == 400


def test_events_record_and_clear(emulator):
    event = {
        "api": "updateAppMessageShareData",
        "args": {"title": "标题"},
        "url": "http://x/",
        "ok": True,
    }
    # The fake JS-SDK posts text/plain (no CORS preflight).
    r = emulator.post(
        "/_emu/events", data=json.dumps(event), headers={"Content-Type": "text/plain"}
    )
    assert r.status_code == 200
    events = emulator.control.events()
    assert len(events) == 1
    assert {k: events[0][k] for k in event} == event
    assert abs(events[0]["ts"] - time.time()) < 5
    assert emulator.post("/_emu/events", json={"ok": True}).status_code == 400
    emulator.control.clear_events()
    assert emulator.control.events() == []


@pytest.mark.parametrize(
    "path",
    ["/_emu/jssdk/verify", "/_emu/jssdk/upload", "/_emu/events", protocol.EMULATOR_JSSDK_PATH],
)
def test_cors_preflight(emulator, path):
    r = emulator.http.options(
        emulator.url(path),
        headers={
            "Origin": "http://127.0.0.1:5000",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
        },
    )
    assert r.status_code == 200
    assert r.headers["Access-Control-Allow-Origin"] == "*"
    assert "POST" in r.headers["Access-Control-Allow-Methods"]
    assert r.headers["Access-Control-Allow-Headers"].lower() == "content-type"


def test_no_cors_on_wechat_api(emulator):
    assert "Access-Control-Allow-Origin" not in call_token(emulator).headers


def test_index_page(emulator):
    r = emulator.http.get(emulator.url("/"))
    assert r.status_code == 200 and "张三" in r.text and protocol.EMULATOR_JSSDK_PATH in r.text
