"""Helpers shared by the tests: the emulator's control client, a live site, logging in.

Fixtures live in conftest.py; tests import helpers from here (``from support import …``),
because several conftest.py files share that module name.
"""

import atexit
import os
import re
import threading
import time
import uuid

import requests
from werkzeug.serving import make_server

from wxsite.emulator.testing import Control
from wxsite.engines import open_engine
from wxsite.store.migrations import migrate

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ARTIFACTS = os.path.join(ROOT, "test-artifacts", "screenshots")

WECHAT_UA = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Mobile/15E148 MicroMessenger/8.0.47(0x18002f2c) NetType/WIFI Language/zh_CN"
)
DESKTOP_UA = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/126.0 Safari/537.36"
SECRET_KEY = "test-secret-key-0123456789abcdef0123456789"
#: The engine the tests that touch data run on: ``sqlite`` (default) or ``postgresql``.
#: ``make test`` runs them on both; ``WXSITE_TEST_ENGINE=postgresql pytest tests/auth`` one.
ENGINE = os.environ.get("WXSITE_TEST_ENGINE", "sqlite")
_postgres = []
_databases = {}
_pg_admin = []


def database(tmp_path, name="wxsite", migrated=False):
    """Return a test's database ``name``: a SQLite file, or a PostgreSQL database.

    The same test folder and name give the same database, as the same file path would (two
    sites of one test share it that way). ``migrated`` PostgreSQL databases are copies of
    one migrated at the start (the site would migrate it anyway; migrating each costs more
    than the copy); SQLite files are migrated by the site that opens them.
    """
    path = str(os.path.join(tmp_path, f"{name}.sqlite3"))
    if ENGINE == "postgresql":
        if path not in _databases:
            _databases[path] = _create_pg_database(migrated)
        return _databases[path]
    return path


def _create_pg_database(migrated):
    import psycopg

    server = postgres_server()
    if not _pg_admin:
        _pg_admin.append(psycopg.connect(server.url("postgres"), autocommit=True))
        _pg_admin[0].execute('CREATE DATABASE "t_migrated" TEMPLATE template0')
        engine = open_engine(server.url("t_migrated"))
        try:
            with engine.connect() as db:
                migrate(db)
        finally:
            engine.close()
    name = f"t_{uuid.uuid4().hex[:12]}"
    template = "t_migrated" if migrated else "template0"
    for attempt in range(50):
        try:
            _pg_admin[0].execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
            return server.url(name)
        except psycopg.errors.ObjectInUse:  # the migration's last connection is closing
            time.sleep(0.05)
    raise RuntimeError(f"template database {template} stays in use")


class Clock:
    """The wall clock plus an offset the test moves (for credential expiry)."""

    def __init__(self):
        self.offset = 0.0

    def __call__(self):
        return time.time() + self.offset


def add_failing_trigger(db, name, table, when):
    """Make ``when`` (``INSERT``, ``UPDATE OF state`` …) on ``table`` fail, on either engine."""
    if db.name == "postgresql":
        db.execute(
            f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql "
            "AS $$ BEGIN RAISE EXCEPTION 'refused for the test'; END $$"
        )
        db.execute(
            f"CREATE TRIGGER {name} BEFORE {when} ON {table} "
            f"FOR EACH ROW EXECUTE FUNCTION {name}()"
        )
    else:
        db.execute(
            f"CREATE TRIGGER {name} BEFORE {when} ON {table} "
            "BEGIN SELECT RAISE(ABORT, 'refused for the test'); END"
        )


def drop_trigger(db, name, table):
    """Remove a trigger ``add_failing_trigger`` made."""
    db.execute(
        f"DROP TRIGGER {name} ON {table}" if db.name == "postgresql" else f"DROP TRIGGER {name}"
    )


def postgres_server():
    """Start (once per test process) the PostgreSQL server the tests share."""
    if not _postgres:
        from pgserver import start_server

        server = start_server()
        atexit.register(server.remove)
        _postgres.append(server)
    return _postgres[0]


class EmulatorControl(Control):
    """The emulator's control client, with the short names the site's tests use."""

    def count(self, path):
        return self.counters().get(path, 0)

    def revoke_tokens(self, appid):
        self.revoke(appid)

    def upload_media(self, data, content_type="image/jpeg", kind="image"):
        return self.add_media(data, type=kind, content_type=content_type)


def site_config(tmp_path, emu, **overrides):
    """Settings for a test site in emulator mode over a fresh database."""
    return {
        "TESTING": True,
        "SECRET_KEY": SECRET_KEY,
        "WXSITE_DATABASE": database(tmp_path, migrated=True),
        "WXSITE_UPLOADS": str(tmp_path / "uploads"),
        "WXSITE_EMULATOR_URL": emu.base_url,
        "WXSITE_DEADLINE": 6.0,
        "INSTANCE_PATH": str(tmp_path / "instance"),  # never the checkout's
        **overrides,
    }


class LiveServer:
    """The site on a real loopback port (for flows that cross to the emulator)."""

    def __init__(self, app, host="127.0.0.1"):
        self.server = make_server(host, 0, app, threaded=True)
        self.base_url = f"http://{host}:{self.server.server_port}"
        # shutdown() waits out a poll: the default 0.5 s would cost every test using it.
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    def url(self, path):
        return self.base_url + path

    def shutdown(self):
        self.server.shutdown()


def form_fields(html):
    """Return the hidden/named inputs of the first form in ``html`` as a dict."""
    fields = {}
    for tag in re.findall(r"<input[^>]*>", html):
        if re.search(r'type="(checkbox|radio)"', tag) and "checked" not in tag:
            continue
        name = re.search(r'name="([^"]*)"', tag)
        value = re.search(r'value="([^"]*)"', tag)
        if name:
            fields[name.group(1)] = value.group(1) if value else ""
    return fields


def in_parallel(calls):
    """Run every ``call()`` at once (a barrier lines them up); return their results in order."""
    barrier = threading.Barrier(len(calls))
    results = [None] * len(calls)

    def run(i, call):
        barrier.wait()
        try:
            results[i] = call()
        except Exception as exc:  # noqa: BLE001 - reported by the caller's asserts
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i, c)) for i, c in enumerate(calls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


# -- logging in through the emulator ------------------------------------------------------


def authorize_link(phone, live, next="/", scope="snsapi_base"):
    """Start a login on the site; return the emulator authorize URL it redirects to."""
    response = phone.get(
        live.url("/auth/login"), params={"next": next, "scope": scope}, allow_redirects=False
    )
    assert response.status_code == 302, response.text[:500]
    return response.headers["Location"]


def callback_url(emu, phone, live, user="zhangsan", next="/", scope="snsapi_base", action="allow"):
    """Walk the authorization as ``user`` would; return the site callback URL (not visited)."""
    return emu.authorize(authorize_link(phone, live, next, scope), user=user, action=action)


def consent(phone, response, user="zhangsan", action="allow", limit=3):
    """Answer the emulator's pages (picker, consent) until the phone is back on the site.

    The one walk of those pages the tests share; the emulator's ``Control.authorize``
    answers them without a browser session (no cookies, the callback not visited).
    """
    for _ in range(limit):
        if "/connect/oauth2/authorize" not in response.url:
            return response
        fields = form_fields(response.text)
        fields.update(user=user, action=action)
        confirm = response.url.split("/connect/")[0] + "/connect/oauth2/authorize/confirm"
        response = phone.post(confirm, data=fields)
    raise AssertionError(f"still authorizing after {limit} pages: a loop")


def wechat_login(phone, live, user="zhangsan", scope="snsapi_base", next="/", action="allow"):
    """Log ``phone`` in through the emulator's real pages; return the final response."""
    response = phone.get(live.url("/auth/login"), params={"next": next, "scope": scope})
    return consent(phone, response, user, action)


def csrf_token(html):
    """Return the CSRF token embedded in a page (form field or meta tag)."""
    match = re.search(r'name="csrf[-_]token"[^>]*(?:value|content)="([^"]+)"', html)
    assert match, "no CSRF token in page"
    return match.group(1)


def amr_bytes(seconds=2):
    """A valid AMR-NB voice note of ``seconds`` (silent frames)."""
    return b"#!AMR\n" + (b"\x3c" + b"\x00" * 31) * (50 * seconds)


def phone_session():
    """A requests session that looks like WeChat's in-app browser."""
    session = requests.Session()
    session.headers["User-Agent"] = WECHAT_UA
    return session


class WeChat:
    """A phone in WeChat on one site: log in, bind, post JSON as the pages' script does.

    ``WeChat(live)`` is a new phone; ``WeChat(live, session)`` drives a session the test
    holds (``session`` stays the phone: its cookies, its headers).
    """

    def __init__(self, live, session=None):
        self.live = live
        self.session = session if session is not None else phone_session()
        self._token = None
        self._token_lock = threading.Lock()  # threads posting at once fetch it once

    def url(self, path):
        return self.live.url(path)

    def get(self, path, **kwargs):
        return self.session.get(self.live.url(path), **kwargs)

    def post(self, path, **kwargs):
        return self.session.post(self.live.url(path), **kwargs)

    def login(self, user="zhangsan", scope="snsapi_base", next="/", action="allow"):
        """Log in through the emulator's real pages; return the final response."""
        self._token = None  # a login (and a bind) rotates the session: the token is fetched anew
        return wechat_login(self.session, self.live, user, scope, next, action)

    def bind(self, username, password, next="/me"):
        """Post the bind form (with its CSRF token) as ``username``; return the response."""
        self._token = None
        page = self.get("/auth/bind", params={"next": next})
        data = {
            "csrf_token": csrf_token(page.text),
            "username": username,
            "password": password,
            "next": next,
        }
        return self.post("/auth/bind", data=data, headers={"Referer": self.url("/auth/bind")})

    def post_json(self, path, body):
        """POST ``body`` as JSON with the page's CSRF token (fetched once per login)."""
        with self._token_lock:
            if self._token is None:
                self._token = csrf_token(self.get("/upload").text)
        headers = {"X-CSRFToken": self._token, "Accept": "application/json"}
        return self.post(path, json=body, headers=headers)
