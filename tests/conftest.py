"""Fixtures: the real emulator on a loopback port, the site on another, flaskr-style."""

import re
import threading

import pytest
import requests
from werkzeug.serving import make_server

from wxsite import create_app
from wxsite.emulator.testing import Control

WECHAT_UA = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Mobile/15E148 MicroMessenger/8.0.47(0x18002f2c) NetType/WIFI Language/zh_CN"
)
DESKTOP_UA = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/126.0 Safari/537.36"
SECRET_KEY = "test-secret-key-0123456789abcdef0123456789"


class Emulator(Control):
    """The emulator's control client, with the short names the site's tests use."""

    def count(self, path):
        return self.counters().get(path, 0)

    def revoke_tokens(self, appid):
        self.revoke(appid)

    def upload_media(self, data, content_type="image/jpeg", kind="image"):
        return self.add_media(data, type=kind, content_type=content_type)


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
