"""The logged-in hot path: a kept connection, no cookie re-sent, CSRF only where it is used."""

import re
from collections import OrderedDict

import pytest
from flask import session
from support import csrf_token, site_config, wechat_login

from wxsite import create_app, extensions, store


def session_cookie(response):
    return [v for v in response.raw.headers.getlist("Set-Cookie") if "wxsite_session=" in v]


def test_unchanged_logged_in_page_sends_no_session_cookie(logged_in, live):
    logged_in.get(live.url("/share"))  # the first render may create the referral code
    again = logged_in.get(live.url("/share"))
    assert again.status_code == 200 and session_cookie(again) == []
    # A change to the session still goes out (a shared link remembered as seen).
    assert session_cookie(logged_in.get(live.url("/?ref=AbCdEfGh1234")))


def test_revoked_login_refused_by_another_instance_on_the_next_request(tmp_path, emu, live, phone):
    wechat_login(phone, live)
    # A second site (another worker or host) over the same database, same secret key.
    other = create_app(site_config(tmp_path, emu))
    client = other.test_client()
    for c in phone.cookies:
        if c.domain in ("127.0.0.1", ""):
            client.set_cookie(c.name, c.value)
    ua = {"User-Agent": phone.headers["User-Agent"]}
    assert client.get("/share", headers=ua).status_code == 200
    assert client.get("/share", headers=ua).status_code == 200  # its thread's connection is kept
    page = phone.get(live.url("/share"))
    phone.post(live.url("/auth/logout"), data={"csrf_token": csrf_token(page.text)})
    refused = client.get("/share", headers=ua)
    assert refused.status_code == 302 and "/auth/login" in refused.headers["Location"]


def test_csrf_token_where_a_page_posts(logged_in, live):
    first = csrf_token(logged_in.get(live.url("/share")).text)  # wx.js posts /jssdk/report
    second = csrf_token(logged_in.get(live.url("/upload")).text)
    assert first == second  # signed once per session token and process, still valid:
    answer = logged_in.post(
        live.url("/jssdk/report"), json={"url": "x", "config": {}}, headers={"X-CSRFToken": second}
    )
    assert answer.status_code == 400 and answer.json()["error"] == "bad_report"
    forged = logged_in.post(
        live.url("/jssdk/report"), json={"url": "x", "config": {}}, headers={"X-CSRFToken": "x"}
    )
    assert forged.json()["error"] == "csrf"


def test_a_full_token_cache_keeps_the_token_signed_last(app, monkeypatch):
    # A cache emptied when full dropped a token signed a moment earlier: the next page of
    # that session got a freshly signed (different) token.
    monkeypatch.setattr(extensions, "_SIGNED", OrderedDict({("other", "old"): "t"}))
    monkeypatch.setattr(extensions, "_SIGNED_MAX", 2)
    for raw in ("raw-a", "raw-b"):
        with app.test_request_context():
            session["csrf_token"] = raw
            extensions.csrf_token()
    assert [raw for _, raw in extensions._SIGNED] == ["raw-a", "raw-b"]


def test_form_pages_keep_a_valid_token(live, phone):
    wechat_login(phone, live, scope="snsapi_userinfo")
    page = phone.get(live.url("/me"))
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    assert token == csrf_token(phone.get(live.url("/share")).text)
    out = phone.post(live.url("/auth/logout"), data={"csrf_token": token}, allow_redirects=False)
    assert out.status_code == 302
    assert phone.get(live.url("/share"), allow_redirects=False).status_code == 302


def test_each_thread_keeps_one_sqlite_connection(app):
    if store.engine(app).name != "sqlite":
        pytest.skip("SQLite keeps a connection per thread; PostgreSQL lends from its pool")
    with app.test_request_context():
        first = store.get_db()
        store.close_db()
    with app.test_request_context():
        assert store.get_db() is first
        store.close_db()


def test_a_connection_left_in_a_transaction_is_not_kept(app):
    if store.engine(app).name != "sqlite":
        pytest.skip("SQLite only")
    with app.test_request_context():
        first = store.get_db()
        first.native.conn.execute("BEGIN")
        store.close_db()
    with app.test_request_context():
        again = store.get_db()
        assert again is not first and not again.in_transaction
        store.close_db()
