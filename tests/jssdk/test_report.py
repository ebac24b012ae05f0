"""``POST /jssdk/report``: a page whose wx.config WeChat refused gets a config to retry with.

RELIABILITY 62: the site learns from the page that WeChat no longer honours its ticket,
fetches a new one once for all workers (here: real gunicorn worker processes over one
SQLite file), and the page retries. The endpoint is same-origin with a CSRF token, answers
JSON, and cannot be used to spend WeChat's quota beyond one re-fetch per few minutes.
"""

import json
import re
from functools import partial

import pytest
import requests

from stack import Gunicorn
from support import csrf_token, in_parallel
from wxsite.wechat import protocol


def embedded_config(html):
    match = re.search(r'<script type="application/json" id="wx-config">(.*?)</script>', html, re.S)
    assert match, "page has no #wx-config"
    return json.loads(match.group(1))


def verifies(emu, config, url):
    body = {**config, "url": url.split("#")[0]}
    return requests.post(emu.base_url + "/_emu/jssdk/verify", json=body, timeout=5).json()["ok"]


def wechat_calls(emu):
    return {p: n for p, n in emu.counters().items() if not p.startswith("/_emu/")}


def report(session, base, url, config, token):
    return session.post(
        base + "/jssdk/report",
        json={"url": url, "config": config},
        headers={"X-CSRFToken": token, "Accept": "application/json"},
        timeout=30,
    )


def test_a_refused_ticket_is_replaced_and_the_page_gets_a_config_that_verifies(
    logged_in, live, emu
):
    url = live.url("/share?a=1")
    page = logged_in.get(url).text
    config, token = embedded_config(page), csrf_token(page)
    emu.reset()  # as after a restart of the emulator: it honours none of our credentials
    assert not verifies(emu, config, url)
    answer = report(logged_in, live.base_url, url + "#frag", config, token)
    assert answer.status_code == 200 and answer.headers["Content-Type"] == "application/json"
    body = answer.json()
    assert body["retry"] is True and verifies(emu, body["config"], url)
    assert body["config"]["jsApiList"] == config["jsApiList"]
    assert emu.count(protocol.TICKET) == 2  # the dead token's 40001, then the new ticket
    # The next render signs with the new ticket: no report needed.
    again = embedded_config(logged_in.get(url).text)
    assert verifies(emu, again, url)
    # That new config reported as failing: retrying cannot help, and nothing is fetched.
    calls = wechat_calls(emu)
    refused = report(logged_in, live.base_url, url, again, token)
    assert refused.status_code == 200 and refused.json() == {"retry": False}
    assert wechat_calls(emu) == calls


def test_report_needs_the_csrf_token_and_answers_json(logged_in, live, emu):
    url = live.url("/share")
    config = embedded_config(logged_in.get(url).text)
    calls = wechat_calls(emu)
    for headers in ({}, {"X-CSRFToken": "forged"}):
        response = logged_in.post(
            live.url("/jssdk/report"), json={"url": url, "config": config}, headers=headers
        )
        assert response.status_code == 400
        assert response.json()["error"] == "csrf"
    # A cross-site form post: no token, and not JSON either.
    form = requests.post(live.url("/jssdk/report"), data={"url": url})
    assert form.status_code == 400 and form.headers["Content-Type"] == "application/json"
    assert wechat_calls(emu) == calls
    assert logged_in.get(live.url("/jssdk/report")).status_code == 405


@pytest.mark.parametrize(
    "body",
    [
        None,
        [],
        {"url": "https://evil.com/share"},
        {"url": "https://evil.com/share", "config": {}},
        {"url": 5, "config": {}},
        {"url": "SAME/share", "config": {"jsApiList": ["getLocation"]}},
        {"url": "SAME/share", "config": {"jsApiList": "updateAppMessageShareData"}},
        {"url": "SAME/share", "config": {"jsApiList": [], "signature": "0" * 40}},
        {"url": "SAME/share", "config": {"jsApiList": [["x"]]}},
        {"url": "SAME/" + "x" * 5000, "config": {}},
        {"url": "SAME/share", "config": {"signature": "zz", "jsApiList": ["chooseImage"]}},
        {
            "url": "SAME/share",
            "config": {
                "timestamp": "12a",
                "nonceStr": "n",
                "signature": "0" * 40,
                "jsApiList": ["chooseImage"],
            },
        },
    ],
)
def test_bad_reports_are_400_json_and_spend_nothing(logged_in, live, emu, body):
    token = csrf_token(logged_in.get(live.url("/share")).text)
    calls = wechat_calls(emu)
    if isinstance(body, dict) and isinstance(body.get("url"), str):
        body = {**body, "url": body["url"].replace("SAME", live.base_url)}
    response = logged_in.post(
        live.url("/jssdk/report"),
        data=json.dumps(body),
        headers={"X-CSRFToken": token, "Content-Type": "application/json"},
    )
    assert response.status_code == 400
    assert response.json()["error"] == "bad_report"
    assert wechat_calls(emu) == calls


def test_an_anonymous_report_gets_at_most_what_jssdk_config_gives(client, app, emu):
    home = client.get("/")
    token = csrf_token(home.get_data(as_text=True))
    url = "http://localhost/share"
    signed = client.get("/jssdk/config", query_string={"url": url}).get_json()
    calls = wechat_calls(emu)
    forged = {**signed, "signature": "f" * 40}
    response = client.post(
        "/jssdk/report", json={"url": url, "config": forged}, headers={"X-CSRFToken": token}
    )
    assert response.status_code == 200 and response.get_json()["retry"] is True
    assert verifies(emu, response.get_json()["config"], url)
    assert wechat_calls(emu) == calls  # not signed with the shared ticket: no re-fetch


@pytest.fixture
def gunicorn(tmp_path, emu):
    site = Gunicorn(str(tmp_path), emu.base_url, workers=4, threads=4)
    yield site
    site.stop()


def test_reports_from_many_pages_across_workers_refetch_the_ticket_once(gunicorn, emu):
    base = gunicorn.base_url
    url = base + "/share"
    first = requests.get(base + "/jssdk/config", params={"url": url}, timeout=10).json()
    emu.reset()  # WeChat no longer honours the ticket every worker signs with
    pages = 16
    sessions = [requests.Session() for _ in range(pages)]
    tokens = [csrf_token(s.get(base + "/", timeout=10).text) for s in sessions]
    answers = in_parallel(
        [partial(report, sessions[i], base, url, first, tokens[i]) for i in range(pages)]
    )
    assert all(a.status_code == 200 for a in answers), [a.text for a in answers]
    bodies = [a.json() for a in answers]
    assert all(b["retry"] and verifies(emu, b["config"], url) for b in bodies)
    assert emu.count(protocol.TICKET) == 2  # one 40001 (dead token), one new ticket
    assert emu.count(protocol.STABLE_TOKEN) == 1

    # A flood of reports of the new, good config: no WeChat call at all.
    fresh = bodies[0]["config"]
    calls = wechat_calls(emu)
    flood = [report(sessions[i % pages], base, url, fresh, tokens[i % pages]) for i in range(40)]
    assert all(r.status_code == 200 and r.json() == {"retry": False} for r in flood)
    assert wechat_calls(emu) == calls
