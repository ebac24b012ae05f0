"""Sessions, binding, CSRF, open redirects, UnionID (RELIABILITY items 18–30)."""

import logging
import re
from contextlib import contextmanager
from urllib.parse import parse_qs, urlsplit

import pytest

from support import (
    WECHAT_UA,
    WeChat,
    consent,
    csrf_token,
    database,
    phone_session,
    site_config,
    wechat_login,
)
from wxsite import accounts, create_app, store, wx
from wxsite.auth.nexturl import safe_next
from wxsite.wechat import protocol

# Django's test_bad_urls and friends.
BAD_NEXT = [
    "//evil.com",
    "/\\evil.com",
    "\\/evil.com",
    "/\\/evil.com",
    "///evil.com",
    "https://evil.com",
    "http://evil.com/",
    "https://site@evil.com",
    "http://site\\@evil.com",
    "javascript:alert(1)",
    "\njavascript:alert(1)",
    "java\nscript:alert(1)",
    "\x08//evil.com",
    "/%2F%2Fevil.com",
    "/%5Cevil.com",
    "%2F%2Fevil.com",
    "ftp://evil.com",
    "evil.com",
    "",
    "/\tevil",
    "HTTP://evil.com",
]
GOOD_NEXT = ["/", "/me", "/upload?tab=1&x=%E4%B8%AD", "/share#frag", "/a/b/../c"]


@pytest.mark.parametrize("value", BAD_NEXT)
def test_bad_next_falls_back_to_home(value):
    assert safe_next(value) == "/"


@pytest.mark.parametrize("value", GOOD_NEXT)
def test_good_next_is_kept(value):
    assert safe_next(value) == value


@pytest.mark.parametrize("value", BAD_NEXT)
def test_open_redirect_through_the_whole_flow(phone, live, emu, value):
    response = wechat_login(phone, live, next=value)
    assert response.url.split("#")[0] == live.url("/")
    assert all("evil" not in r.headers.get("Location", "") for r in response.history)


def open_me(phone, live):
    """GET /me, consenting to snsapi_userinfo on the emulator if it asks."""
    response = consent(phone, phone.get(live.url("/me")))
    assert response.url.split("#")[0] == live.url("/me"), response.url
    return response


ALICE = ("alice", "correct horse battery")
BOB = ("bob", "another good password")


@pytest.fixture
def account(app):
    with app.app_context():
        db = store.get_db()
        accounts.create(db, *ALICE)
        accounts.create(db, *BOB)


def test_bind_right_password_rotates_session_and_returns_to_next(logged_in, wechat, live, account):
    before = logged_in.cookies.get("wxsite_session")
    response = wechat.bind(*ALICE, next="/healthz")
    assert response.url == live.url("/healthz")
    assert logged_in.cookies.get("wxsite_session") != before
    assert "alice" in open_me(logged_in, live).text
    # The pre-bind cookie is revoked with the rotation, not merely replaced.
    assert not logged_in_with(live, before)


def logged_in_with(live, cookie):
    """Return True if a fresh browser holding ``cookie`` is logged in."""
    other = phone_session()
    other.cookies.set("wxsite_session", cookie)
    return other.get(live.url("/auth/bind"), allow_redirects=False).status_code == 200


def test_bind_wrong_password_same_answer_as_unknown_user(logged_in, wechat, account):
    wrong = wechat.bind("alice", "wrong password!")
    unknown = wechat.bind("nobody", "correct horse battery")
    assert wrong.status_code == unknown.status_code == 400
    assert "用户名或密码错误" in wrong.text and "用户名或密码错误" in unknown.text


def test_bind_failures_are_limited_per_account(live, emu, account):
    for user in ("zhangsan", "lisi", "wangwu"):  # rotating WeChat identities
        phone = WeChat(live)
        phone.login(user=user)
        for _ in range(2):
            last = phone.bind("alice", "not the password")
    assert last.status_code == 429 and "尝试次数过多" in last.text
    # Even the right password is refused while the account is locked.
    assert phone.bind(*ALICE).status_code == 429


def test_bind_failures_are_limited_per_client(logged_in, wechat, live, account):
    from wxsite.auth.views import MAX_CLIENT_FAILURES

    for i in range(MAX_CLIENT_FAILURES):  # different usernames: no account reaches its limit
        assert wechat.bind(f"nobody{i}", "guess").status_code == 400
    limited = wechat.bind(*ALICE)  # even the right password
    assert limited.status_code == 429 and "尝试次数过多" in limited.text
    assert "alice" not in open_me(logged_in, live).text


def test_person_already_bound_cannot_bind_another_account(logged_in, wechat, live, account):
    wechat.bind(*ALICE)
    me = open_me(logged_in, live)
    response = logged_in.post(
        live.url("/auth/bind"),
        data={
            "csrf_token": csrf_token(me.text),
            "username": "bob",
            "password": "another good password",
            "next": "/me",
        },
    )
    assert "已绑定账号 alice" in response.text
    assert "bob" not in open_me(logged_in, live).text


def test_account_bound_to_someone_else_is_refused(live, emu, account):
    first = WeChat(live)
    first.login(user="zhangsan")
    first.bind(*ALICE)
    second = WeChat(live)
    second.login(user="lisi")
    response = second.bind(*ALICE)
    assert response.status_code == 409 and "已绑定其他微信" in response.text


def test_unbind_then_bind_another(logged_in, wechat, live, account):
    wechat.bind(*ALICE)
    me = open_me(logged_in, live)
    response = logged_in.post(live.url("/auth/unbind"), data={"csrf_token": csrf_token(me.text)})
    assert "已解除绑定" in response.text
    assert wechat.bind(*BOB).status_code == 200
    assert "bob" in open_me(logged_in, live).text


@pytest.mark.parametrize("path", ["/auth/bind", "/auth/unbind", "/auth/logout"])
def test_posts_without_csrf_token_are_refused(logged_in, live, account, path):
    response = logged_in.post(
        live.url(path), data={"username": "alice", "password": "correct horse battery"}
    )
    assert response.status_code == 400
    assert "页面已过期，请刷新后重试" in response.text
    assert "alice" not in open_me(logged_in, live).text
    assert (
        logged_in.get(live.url("/auth/bind"), allow_redirects=False).status_code == 200
    )  # still logged in


def test_wrong_csrf_token_is_refused(logged_in, live, account):
    response = logged_in.post(live.url("/auth/logout"), data={"csrf_token": "forged"})
    assert response.status_code == 400


@pytest.mark.parametrize("path", ["/auth/logout", "/auth/unbind"])
def test_get_on_state_changing_routes_is_405(logged_in, live, path):
    assert logged_in.get(live.url(path)).status_code == 405
    assert logged_in.get(live.url("/auth/bind"), allow_redirects=False).status_code == 200


def test_cookie_replayed_after_logout_is_anonymous(logged_in, live):
    captured = logged_in.cookies.get("wxsite_session")
    page = logged_in.get(live.url("/auth/bind"))
    logged_in.post(live.url("/auth/logout"), data={"csrf_token": csrf_token(page.text)})
    thief = phone_session()
    thief.cookies.set("wxsite_session", captured)
    assert thief.get(live.url("/auth/bind"), allow_redirects=False).status_code == 302


def test_planted_session_does_not_survive_login(live, emu):
    attacker = WeChat(live)
    attacker.login(user="lisi")
    planted = attacker.session.cookies.get("wxsite_session")
    victim = phone_session()
    victim.cookies.set("wxsite_session", planted, domain="127.0.0.1", path="/")
    wechat_login(victim, live, user="zhangsan")
    assert [c.value for c in victim.cookies if c.name == "wxsite_session"] != [planted]
    me = open_me(victim, live)
    assert emu.users()["zhangsan"]["openids"][protocol.EMULATOR_APPID] in me.text
    assert emu.users()["lisi"]["openids"][protocol.EMULATOR_APPID] not in me.text


def test_logging_in_as_someone_else_replaces_the_whole_session(phone, live, emu):
    from support import authorize_link

    wechat_login(phone, live, user="lisi")
    as_lisi = phone.cookies.get("wxsite_session")
    phone.get(emu.authorize(authorize_link(phone, live), user="zhangsan"))
    phone.cookies.set("wxemu_user", "zhangsan", domain="127.0.0.1", path="/")  # for /me's consent
    me = open_me(phone, live)
    users = emu.users()
    assert users["zhangsan"]["openids"][protocol.EMULATOR_APPID] in me.text
    assert users["lisi"]["openids"][protocol.EMULATOR_APPID] not in me.text
    assert not logged_in_with(live, as_lisi)  # lisi's login was revoked, not left behind


def test_session_cookie_flags(client, app, emu, phone, live):
    response = wechat_login(phone, live)
    cookie_headers = [h for r in response.history for h in r.raw.headers.getlist("Set-Cookie")]
    session_cookie = [h for h in cookie_headers if h.startswith("wxsite_session=")][-1]
    assert (
        "HttpOnly" in session_cookie
        and "SameSite=Lax" in session_cookie
        and "Path=/" in session_cookie
    )
    assert "Domain" not in session_cookie
    assert "Secure" not in session_cookie  # plain http here
    assert not any(h.startswith("remember_token=") for h in cookie_headers)  # never set
    secure = client.get("/auth/login?next=/", base_url="https://wx.example.test")
    assert "Secure" in secure.headers["Set-Cookie"]


def test_session_survives_network_change(logged_in, live):
    # Flask-Login's session identifier hashes the client address (X-Forwarded-For first)
    # and the User-Agent: change both, as Wi-Fi → 4G and a WeChat update would.
    moved = {"X-Forwarded-For": "10.9.8.7", "User-Agent": WECHAT_UA.replace("8.0.47", "8.0.48")}
    response = logged_in.get(live.url("/auth/bind"), headers=moved, allow_redirects=False)
    assert response.status_code == 200  # still logged in ("basic" protection)
    again = logged_in.get(live.url("/auth/bind"), allow_redirects=False)
    assert again.status_code == 200  # and back on Wi-Fi too


@contextmanager
def carol_on_two_appids(tmp_path, emu):
    """Two sites (the emulator's two appids) over one database; zhaoliu logged in on both
    (``phone`` on the first, bound to carol; ``other`` on the second)."""
    from support import LiveServer

    common = dict(WXSITE_DATABASE=database(tmp_path, "shared"))
    site1 = create_app(site_config(tmp_path, emu, **common))
    site2 = create_app(
        site_config(
            tmp_path,
            emu,
            WX_APPID=protocol.EMULATOR_APPID_2,
            WX_SECRET=protocol.EMULATOR_SECRET_2,
            WX_API_BASE=emu.base_url,
            WX_OPEN_BASE=emu.base_url,
            **common,
        )
    )
    with site1.app_context():
        accounts.create(store.get_db(), "carol", "a long password")
    live1, live2 = LiveServer(site1), LiveServer(site2)
    try:
        phone = WeChat(live1)
        phone.login(user="zhaoliu")
        phone.bind("carol", "a long password")
        other = WeChat(live2)
        other.login(user="zhaoliu")
        yield site1, live1, live2, phone, other
    finally:
        live1.shutdown()
        live2.shutdown()


def test_unionid_makes_one_person_across_two_appids(tmp_path, emu, account):
    with carol_on_two_appids(tmp_path, emu) as (site1, live1, live2, phone, other):
        me = other.login(user="zhaoliu", scope="snsapi_userinfo", next="/me")
        assert "carol" in me.text  # same person, same binding, through the other appid
        openid2 = emu.users()["zhaoliu"]["openids"][protocol.EMULATOR_APPID_2]
        assert openid2 in me.text
        with site1.app_context():
            rows = list(store.get_db().query("SELECT person_id FROM wechat_users"))
            assert len(rows) == 2 and rows[0]["person_id"] == rows[1]["person_id"]
            # An upload made through the first site ...
            (tmp_path / "uploads" / "p.png").write_bytes(b"\x89PNG fake")
            row, _ = store.add_upload(
                store.get_db(), rows[0]["person_id"], "image", "m1", "p.png", "h", 10, "image/png"
            )
        # ... is the same person's upload through the second.
        upload = other.get(f"/uploads/{row['id']}")
        assert upload.status_code == 200 and upload.content == b"\x89PNG fake"
        # Without a unionid, (appid, openid) is the person: wangwu is two people here.
        for live_site in (live1, live2):
            WeChat(live_site).login(user="wangwu")
        with site1.app_context():
            people = {
                r["appid"]: r["person_id"]
                for r in store.get_db().query(
                    "SELECT appid, person_id FROM wechat_users WHERE unionid IS NULL"
                )
            }
        assert len(people) == 2 and len(set(people.values())) == 2


def test_without_unionid_each_appid_is_its_own_person(tmp_path, emu):
    from wxsite.wechat.oauth import WebToken

    db = store.connect(database(tmp_path, "x"))
    store.migrate(db)
    a = store.save_wechat_login(db, "wxA", WebToken("o1", "t", "r", 7200, "snsapi_base"))
    b = store.save_wechat_login(db, "wxB", WebToken("o2", "t", "r", 7200, "snsapi_base"))
    c = store.save_wechat_login(db, "wxA", WebToken("o1", "t2", "r", 7200, "snsapi_base"))
    rows = {r["id"]: r for r in db.query("SELECT * FROM wechat_users")}
    assert a == c and rows[a]["person_id"] != rows[b]["person_id"]
    assert rows[a]["web_access_token"] == "t2"


def test_nothing_secret_in_pages_urls_or_logs(phone, wechat, live, emu, caplog, app, account):
    caplog.set_level("DEBUG")
    site_hops = []  # every response of the site: its page and the URL it sends people to
    codes = []  # the codes WeChat handed over on the callback URLs

    def keep(response, *args, **kwargs):
        if response.url.startswith(live.base_url):
            site_hops.append(response.headers.get("Location", "") + "\n" + response.text)
            codes.extend(parse_qs(urlsplit(response.url).query).get("code", []))

    phone.hooks["response"].append(keep)
    wechat.login(scope="snsapi_userinfo", next="/me")
    phone.get(live.url("/me"))
    wechat.bind("alice", "wrong password!")
    with app.app_context():
        db = store.get_db()
        db.execute("UPDATE wechat_users SET profile_at = 0, web_token_expires = 0")
        global_token = wx.client().access_token()
    phone.get(live.url("/me"))  # refreshes the web token and the profile server-side
    emu.fault(protocol.SNS_ACCESS_TOKEN, errcode=protocol.INVALID_APPSECRET)
    wechat.login(next="/me")  # an error page on the way
    cookie = phone.cookies.get("wxsite_session")
    with app.app_context():
        db = store.get_db()
        tokens = [
            v
            for r in db.query("SELECT web_access_token, refresh_token FROM wechat_users")
            for v in r.values()
        ]
        login_ids = [r["id"] for r in db.query("SELECT id FROM logins")]
    secrets = [protocol.EMULATOR_SECRET, global_token, cookie, *tokens, *login_ids]
    secrets += codes
    assert len(codes) >= 2 and len(tokens) >= 2 and all(secrets)
    # wxsite's own records at every level; everything at INFO and above (what production
    # emits) except the test server's access lines, which production never writes.
    logged = "\n".join(
        r.getMessage()
        for r in caplog.records
        if r.name.startswith("wxsite") or (r.levelno >= logging.INFO and r.name != "werkzeug")
    )
    pages = "\n".join(site_hops)
    for secret in secrets:
        assert secret not in logged
        assert secret not in pages
    assert not re.search(r"[?&](code|secret|access_token)=", logged)


def test_me_without_push_asks_for_the_follow_state_once_in_a_while(app, phone, live, emu):
    wechat_login(phone, live, scope="snsapi_userinfo")
    for _ in range(3):
        assert "已关注" in open_me(phone, live).text
    assert emu.count(protocol.USER_INFO) == 1  # not once per view
    with app.app_context():  # the answer grows old
        store.get_db().execute("UPDATE followers SET changed_at = changed_at - 601")
    emu.set_follows("zhangsan", [])
    assert "未关注" in open_me(phone, live).text
    assert emu.count(protocol.USER_INFO) == 2
