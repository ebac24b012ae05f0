"""Fixtures: the real emulator on a loopback port, the site on another, flaskr-style."""

import re
import threading

import pytest
import requests
from werkzeug.serving import make_server

from wxsite import create_app

WECHAT_UA = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Mobile/15E148 MicroMessenger/8.0.47(0x18002f2c) NetType/WIFI Language/zh_CN"
)
DESKTOP_UA = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/126.0 Safari/537.36"
SECRET_KEY = "test-secret-key-0123456789abcdef0123456789"


class Emulator:
    """Drive the emulator's control API (/_emu/…) from tests."""

    def __init__(self, base_url):
        self.base_url = base_url
        self.http = requests.Session()

    def _url(self, path):
        return self.base_url + path

    def reset(self):
        self.http.post(self._url("/_emu/reset")).raise_for_status()

    def counters(self):
        return self.http.get(self._url("/_emu/counters")).json()

    def count(self, path):
        return self.counters().get(path, 0)

    def fault(self, path, count=1, **kind):
        self.http.post(self._url("/_emu/faults"), json={"path": path, "count": count, **kind}).raise_for_status()

    def clear_faults(self):
        self.http.delete(self._url("/_emu/faults")).raise_for_status()

    def advance(self, seconds):
        self.http.post(self._url("/_emu/clock"), json={"advance": seconds}).raise_for_status()

    def revoke_tokens(self, appid):
        self.http.post(self._url("/_emu/tokens/revoke"), json={"appid": appid}).raise_for_status()

    def users(self):
        return {u["key"]: u for u in self.http.get(self._url("/_emu/users")).json()}

    def set_follows(self, key, appids):
        self.http.post(self._url(f"/_emu/users/{key}"), json={"follows": list(appids)}).raise_for_status()

    def upload_media(self, data, content_type="image/jpeg", kind="image"):
        r = self.http.post(
            self._url(f"/_emu/media?type={kind}"), data=data, headers={"Content-Type": content_type}
        )
        r.raise_for_status()
        return r.json()["media_id"]

    def events(self):
        return self.http.get(self._url("/_emu/events")).json()


@pytest.fixture(scope="session")
def emulator_server():
    from wxsite.emulator import create_emulator
    from wxsite.emulator.server import start

    running = start(create_emulator())
    yield running
    running.shutdown()


@pytest.fixture
def emu(emulator_server):
    """The emulator, reset for this test."""
    control = Emulator(emulator_server.base_url)
    control.reset()
    return control


def site_config(tmp_path, emu, **overrides):
    """Settings for a test site in emulator mode over a fresh database."""
    return {
        "TESTING": True,
        "SECRET_KEY": SECRET_KEY,
        "WXSITE_DATABASE": str(tmp_path / "wxsite.sqlite3"),
        "WXSITE_UPLOADS": str(tmp_path / "uploads"),
        "WXSITE_EMULATOR_URL": emu.base_url,
        "WXSITE_DEADLINE": 6.0,
        **overrides,
    }


@pytest.fixture
def app(tmp_path, emu):
    return create_app(site_config(tmp_path, emu))


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


class LiveServer:
    """The site on a real loopback port (for flows that cross to the emulator)."""

    def __init__(self, app, host="127.0.0.1"):
        self.server = make_server(host, 0, app, threaded=True)
        self.base_url = f"http://{host}:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path):
        return self.base_url + path

    def shutdown(self):
        self.server.shutdown()


@pytest.fixture
def live(app):
    server = LiveServer(app)
    yield server
    server.shutdown()


@pytest.fixture
def phone():
    """A requests session that looks like WeChat's in-app browser."""
    session = requests.Session()
    session.headers["User-Agent"] = WECHAT_UA
    return session


def form_fields(html):
    """Return the hidden/named inputs of the first form in ``html`` as a dict."""
    fields = {}
    for tag in re.findall(r"<input[^>]*>", html):
        name = re.search(r'name="([^"]*)"', tag)
        value = re.search(r'value="([^"]*)"', tag)
        if name:
            fields[name.group(1)] = value.group(1) if value else ""
    return fields
