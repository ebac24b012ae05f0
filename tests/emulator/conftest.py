"""Fixtures: the emulator served on a real loopback port, reset before every test."""

from dataclasses import dataclass
from urllib.parse import quote

import pytest
import requests

from wxsite.emulator import create_emulator
from wxsite.emulator.server import start
from wxsite.emulator.testing import Control
from wxsite.wechat import protocol

APPID, SECRET = protocol.EMULATOR_APPID, protocol.EMULATOR_SECRET
APPID_2, SECRET_2 = protocol.EMULATOR_APPID_2, protocol.EMULATOR_SECRET_2
CALLBACK = "http://127.0.0.1:5000/auth/callback"


@dataclass
class RunningEmulator:
    """A running emulator: where it is, its control API, and an HTTP session."""

    base_url: str
    control: Control
    http: requests.Session
    running: object

    def url(self, path):
        """Return the absolute URL of *path* on the emulator."""
        return self.base_url + path

    def get(self, path, **kwargs):
        """GET *path* (no redirects followed)."""
        return self.http.get(self.url(path), allow_redirects=False, **kwargs)

    def post(self, path, **kwargs):
        """POST to *path* (no redirects followed)."""
        return self.http.post(self.url(path), allow_redirects=False, **kwargs)

    def token(self, appid=APPID, secret=SECRET):
        """Fetch a classic global access_token."""
        body = self.get(
            protocol.TOKEN,
            params={"grant_type": "client_credential", "appid": appid, "secret": secret},
        ).json()
        return body["access_token"]

    def login(self, user="zhangsan", scope=protocol.SCOPE_USERINFO, appid=APPID, **kwargs):
        """Authorize *user* and return the callback's code."""
        location = self.control.authorize(auth_link(appid=appid, scope=scope), user, **kwargs)
        return requests.utils.urlparse(location).query.split("code=")[1].split("&")[0]

    def web_token(self, user="zhangsan", scope=protocol.SCOPE_USERINFO, appid=APPID):
        """Authorize *user* and exchange the code; return the JSON body."""
        secret = protocol.EMULATOR_ACCOUNTS[appid]
        code = self.login(user, scope, appid)
        return self.get(
            protocol.SNS_ACCESS_TOKEN,
            params={
                "appid": appid,
                "secret": secret,
                "code": code,
                "grant_type": "authorization_code",
            },
        ).json()


def auth_link(
    appid=APPID, redirect_uri=CALLBACK, scope=protocol.SCOPE_USERINFO, state="xyz123", extra=""
):
    """Return an authorization link exactly as WeChat wants it (without the fragment)."""
    query = (
        f"appid={appid}&redirect_uri={quote(redirect_uri, safe='')}"
        f"&response_type=code&scope={scope}"
    )
    if state is not None:
        query += f"&state={state}"
    return f"{protocol.AUTHORIZE}?{query}{extra}"


@pytest.fixture
def emulator(emulator_server):
    """The session's emulator (tests/conftest.py), reset for this test."""
    control = Control(emulator_server.base_url)
    control.reset()
    with requests.Session() as http:
        yield RunningEmulator(emulator_server.base_url, control, http, emulator_server)


@pytest.fixture
def make_emulator():
    """Start emulators with a given config; stop them after the test."""
    started = []

    def make(**config):
        running = start(create_emulator(config), quiet=True)
        started.append(running)
        return RunningEmulator(
            running.base_url, Control(running.base_url), requests.Session(), running
        )

    yield make
    for running in started:
        running.shutdown()
