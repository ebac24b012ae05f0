"""The logged-in hot path: a kept connection, no cookie re-sent, CSRF only where it is used."""

import hashlib
import json
import os
import re
import time
from collections import OrderedDict
from contextlib import contextmanager

import psycopg
import pytest
from flask import request as flask_request
from flask import session
from itsdangerous import TimestampSigner
from support import WeChat, csrf_token, site_config, wechat_login

from wxsite import accounts, create_app, extensions, store
from wxsite.store import identities


def session_cookie(response):
    return [v for v in response.raw.headers.getlist("Set-Cookie") if "wxsite_session=" in v]


def test_unchanged_logged_in_page_sends_no_session_cookie(logged_in, live):
    logged_in.get(live.url("/share"))  # the first render may create the referral code
    again = logged_in.get(live.url("/share"))
    assert again.status_code == 200 and session_cookie(again) == []
    # A change to the session still goes out (a shared link remembered as seen).
    assert session_cookie(logged_in.get(live.url("/?ref=AbCdEfGh1234")))


def other_instance(tmp_path, emu, phone):
    """Return a test client of a second site over the same database, holding ``phone``'s cookie.

    Another worker or host: same database, same secret key, its own connections.
    """
    other = create_app(site_config(tmp_path, emu))
    client = other.test_client()
    for c in phone.cookies:
        if c.domain in ("127.0.0.1", ""):
            client.set_cookie(c.name, c.value)
    return other, client


def _log_out(phone, live, app):
    page = phone.get(live.url("/share"))
    phone.post(live.url("/auth/logout"), data={"csrf_token": csrf_token(page.text)})


def _log_in_again(phone, live, app):
    wechat_login(phone, live)  # a new login while logged in rotates the session


def _bind(phone, live, app):
    with app.app_context():
        accounts.create(store.get_db(), "alice", "correct horse battery")
    bound = WeChat(live, phone).bind("alice", "correct horse battery", next="/healthz")
    assert bound.url == live.url("/healthz")  # bound, and the session rotated


@pytest.mark.parametrize("revoke", [_log_out, _log_in_again, _bind], ids=lambda f: f.__name__)
def test_revoked_login_refused_by_another_instance_on_the_next_request(
    tmp_path, emu, app, live, phone, revoke
):
    wechat_login(phone, live)
    _, client = other_instance(tmp_path, emu, phone)
    ua = {"User-Agent": phone.headers["User-Agent"]}
    assert client.get("/share", headers=ua).status_code == 200
    assert client.get("/share", headers=ua).status_code == 200  # its thread's connection is kept
    revoke(phone, live, app)
    refused = client.get("/share", headers=ua)
    assert refused.status_code == 302 and "/auth/login" in refused.headers["Location"]


@contextmanager
def counted_statements(app):
    """Count the SQL statements sent to the database in the block, on either engine.

    Counted at the driver, so a connection's PRAGMAs, a pool's liveness ping and
    transaction control count as well as the store's own queries.
    """
    sent = []
    if store.engine(app).name == "sqlite":
        conn = app.extensions[store.HELD].held.conn.native.conn  # this thread's, kept
        conn.set_trace_callback(sent.append)
        try:
            yield sent
        finally:
            conn.set_trace_callback(None)
        return
    # Every psycopg statement goes through Cursor.execute (Connection.execute makes a cursor).
    original = psycopg.Cursor.execute

    def execute(self, query, *args, **kwargs):
        sent.append(str(query))
        return original(self, query, *args, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(psycopg.Cursor, "execute", execute)
        yield sent


#: Statements of one logged-in request on a warm worker: the login check (one indexed read
#: of the login, its identity, person and account) and the page's own reads, on either
#: engine: PostgreSQL lends a pooled connection without a liveness round trip.
PAGE_READS = {"/share": 1, "/upload": 1, "/me": 2}  # /me: visits and follow status


@pytest.mark.parametrize("path", sorted(PAGE_READS))
def test_statements_per_logged_in_request(tmp_path, emu, live, phone, path):
    wechat_login(phone, live, scope="snsapi_userinfo")
    phone.get(live.url("/share"))  # the referral code, made once
    other, client = other_instance(tmp_path, emu, phone)
    ua = {"User-Agent": phone.headers["User-Agent"]}
    assert client.get(path, headers=ua).status_code == 200  # the thread's connection opened
    with counted_statements(other) as sent:
        assert client.get(path, headers=ua).status_code == 200
    assert len(sent) == 1 + PAGE_READS[path], sent
    reads = [s for s in sent if s.strip()]
    assert all(s.lstrip().upper().startswith("SELECT") for s in reads), sent  # no writes
    assert "FROM logins l JOIN wechat_users w" in reads[0]


@pytest.mark.sqlite_only
def test_the_login_check_uses_primary_keys_only(app):
    with app.app_context():
        plan = store.get_db().query(
            "EXPLAIN QUERY PLAN " + identities._LOGIN, {"id": "x", "since": 0.0}
        )
    details = [row["detail"] for row in plan]
    assert len(details) == 4 and all(d.startswith("SEARCH") for d in details), details
    assert "sqlite_autoindex_logins_1 (id=?)" in details[0]


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


def test_pages_sign_the_csrf_token_once_per_session(client, monkeypatch):
    # Flask-WTF's context processor used to hand templates its own generate_csrf, which
    # signed anew on every render: a second later, another token for the same session.
    ticks = iter(range(1_700_000_000, 1_800_000_000, 7))
    monkeypatch.setattr(TimestampSigner, "get_timestamp", lambda self: next(ticks))
    first = csrf_token(client.get("/").text)
    assert csrf_token(client.get("/").text) == first
    assert "csrf_token" not in _context_processor_names(client.application)


def _context_processor_names(app):
    with app.test_request_context():
        names = set()
        for processor in app.template_context_processors[None]:
            names.update(processor())
    return names


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


def _session_cookie_for(app, data):
    with app.test_request_context():
        return app.session_interface.get_signing_serializer(app).dumps(data)


def _open(app, cookie):
    with app.test_request_context(headers={"Cookie": f"wxsite_session={cookie}"}):
        return app.session_interface.open_session(app, flask_request._get_current_object())


def test_a_session_cookie_is_verified_once_per_process(app, monkeypatch):
    cookie = _session_cookie_for(app, {"_user_id": "login-a", "ref_seen": ["AbCdEfGh1234"]})
    assert _open(app, cookie)["_user_id"] == "login-a"
    serializer = app.session_interface.get_signing_serializer(app)
    monkeypatch.setattr(type(serializer), "loads", lambda *a, **k: pytest.fail("verified twice"))
    again = _open(app, cookie)
    assert again == {"_user_id": "login-a", "ref_seen": ["AbCdEfGh1234"]}
    again["ref_seen"].append("changed in place")  # as flash() does with _flashes
    assert _open(app, cookie)["ref_seen"] == ["AbCdEfGh1234"]


def test_a_cached_session_cookie_still_expires_and_a_forged_one_is_refused(app, monkeypatch):
    cookie = _session_cookie_for(app, {"_user_id": "login-a"})
    assert _open(app, cookie)["_user_id"] == "login-a"  # now cached
    forged = cookie[:-2] + ("AA" if not cookie.endswith("AA") else "BB")
    assert dict(_open(app, forged)) == {}
    later = time.time() + app.permanent_session_lifetime.total_seconds() + 5
    monkeypatch.setattr(time, "time", lambda: later)
    assert dict(_open(app, cookie)) == {}


def test_a_new_secret_key_refuses_cached_cookies(tmp_path, emu):
    first = create_app(site_config(tmp_path, emu))
    cookie = _session_cookie_for(first, {"_user_id": "login-a"})
    assert _open(first, cookie)["_user_id"] == "login-a"
    first.secret_key = "another-secret-key-0123456789abcdef0123"
    assert dict(_open(first, cookie)) == {}


def test_pages_link_hashed_static_names_served_for_a_year(logged_in, live, app):
    page = logged_in.get(live.url("/share")).text
    links = re.findall(r'(?:href|src)="(/static/[^"]+)"', page)
    assert {"css/site", "js/wx", "js/share"} <= {
        re.sub(r"\.[0-9a-f]{12}\.\w+$", "", link[len("/static/") :]) for link in links
    }
    for link in links:
        assert re.fullmatch(r"/static/[\w/-]+\.[0-9a-f]{12}\.(css|js|svg|png)", link), link
        name = link[len("/static/") :]
        original = re.sub(r"\.[0-9a-f]{12}(\.\w+)$", r"\1", name)
        hashed = logged_in.get(live.url(link))
        assert hashed.status_code == 200
        assert hashed.headers["Cache-Control"] == "public, max-age=31536000, immutable"
        with open(os.path.join(app.static_folder, original), "rb") as f:
            content = f.read()
        assert hashed.content == content
        assert hashlib.sha256(content).hexdigest()[:12] in name
        assert "nosniff" in hashed.headers["X-Content-Type-Options"]
        plain = logged_in.get(live.url(f"/static/{original}"))  # still works, revalidated
        assert plain.status_code == 200 and plain.content == content
        assert "immutable" not in plain.headers.get("Cache-Control", "")


def test_share_card_image_under_its_hashed_name(logged_in, live):
    share = re.search(
        r'<script type="application/json" id="share-data">(.*?)</script>',
        logged_in.get(live.url("/share")).text,
    )
    image = json.loads(share.group(1))["imgUrl"]
    assert re.search(r"/static/img/share\.[0-9a-f]{12}\.png$", image), image
    answer = logged_in.get(image)
    assert answer.status_code == 200 and answer.headers["Content-Type"] == "image/png"


def test_an_old_or_foreign_hashed_name(client, app):
    old = client.get("/static/css/site.0123456789ab.css", buffered=True)  # from before a deploy
    assert old.status_code == 200 and "immutable" not in old.headers.get("Cache-Control", "")
    with open(os.path.join(app.static_folder, "css", "site.css"), "rb") as f:
        assert old.data == f.read()
    for path in (
        "/static/css/nothing.0123456789ab.css",
        "/static/..%2fwxsite%2fapp.0123456789ab.py",
        "/static/%2e%2e/wxsite/app.0123456789ab.py",
        "/static/css.0123456789ab",
    ):
        assert client.get(path, buffered=True).status_code == 404, path


def test_an_edited_file_gets_a_new_name_in_debug_mode(tmp_path):
    from wxsite.assets import Assets

    (tmp_path / "css").mkdir()
    sheet = tmp_path / "css" / "a.css"
    sheet.write_text("body{}")
    kept, watched = Assets(str(tmp_path)), Assets(str(tmp_path), check_changes=True)
    first = kept.hashed("css/a.css")
    assert watched.hashed("css/a.css") == first and re.fullmatch(r"css/a\.[0-9a-f]{12}\.css", first)
    sheet.write_text("body{color:red}")
    assert kept.hashed("css/a.css") == first
    assert watched.hashed("css/a.css") != first
    assert watched.original(watched.hashed("css/a.css")) == ("css/a.css", True)
    assert watched.original(first) == ("css/a.css", False)
    assert kept.hashed("../etc/passwd") == "../etc/passwd" and kept.original("x") is None


@pytest.mark.parametrize(
    "headers",
    [
        {"User-Agent": "MicroMessenger 8.0"},
        {"User-Agent": "微信", "X-Forwarded-For": "10.0.0.1, 10.0.0.2"},
        {},
    ],
)
def test_the_memoized_session_identifier_is_flask_logins(app, headers):
    from flask_login.utils import _create_identifier

    with app.test_request_context(headers=headers):
        assert extensions.session_identifier() == _create_identifier()
