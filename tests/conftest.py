"""Fixtures: the real emulator on a loopback port, the site on another, flaskr-style."""

import shutil

import pytest

from support import ENGINE, EmulatorControl, LiveServer, WeChat, phone_session, site_config
from wxsite import create_app, engines


@pytest.fixture(scope="session")
def emulator_server():
    from wxsite.emulator import create_emulator
    from wxsite.emulator.server import start

    running = start(create_emulator(), quiet=True)
    yield running
    running.shutdown()


@pytest.fixture(autouse=True)
def close_engines():
    """Close the database engines a test's apps opened (PostgreSQL pools hold threads)."""
    yield
    engines.close_all()


@pytest.fixture
def emu(emulator_server):
    """The emulator, reset for this test."""
    control = EmulatorControl(emulator_server.base_url)
    control.reset()
    return control


@pytest.fixture
def app(tmp_path, emu):
    return create_app(site_config(tmp_path, emu))


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


@pytest.fixture
def live(app):
    server = LiveServer(app)
    yield server
    server.shutdown()


@pytest.fixture
def phone():
    """A requests session that looks like WeChat's in-app browser."""
    return phone_session()


@pytest.fixture
def wechat(phone, live, emu):
    """``phone`` in WeChat on the ``live`` site (see support.WeChat), not logged in yet."""
    return WeChat(live, phone)


@pytest.fixture
def logged_in(wechat):
    """A WeChat phone session logged in as zhangsan (snsapi_base): ``wechat``'s session."""
    response = wechat.login()
    landed = response.url.split("#")[0]
    assert response.status_code == 200 and landed == wechat.url("/"), response.url
    return wechat.session


def pytest_collection_modifyitems(config, items):
    """On PostgreSQL, skip the tests that look inside SQLite itself."""
    if ENGINE == "sqlite":
        return
    skip = pytest.mark.skip(reason="looks inside SQLite; this run is on PostgreSQL")
    for item in items:
        if "sqlite_only" in item.keywords:
            item.add_marker(skip)


CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="session")
def browser():
    """One headless Chromium for the session (Debian's, driven by Playwright), started lazily."""
    from playwright.sync_api import sync_playwright

    executable = shutil.which("chromium") or shutil.which("chromium-browser")
    if not executable:
        pytest.fail(
            "Chromium is missing: run `make test` (installs Debian's chromium) or apt-get install chromium"
        )
    with sync_playwright() as p:
        instance = p.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield instance
        instance.close()
