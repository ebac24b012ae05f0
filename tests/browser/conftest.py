"""Headless Chromium (Debian's, driven by Playwright) against the site under gunicorn.

Each scenario runs twice: straight to gunicorn (4 workers) and behind nginx forwarding
X-Forwarded-Proto/Host/Port to a site on WX_PROXY_HOPS=1 — a stand-in for a tunnel.
"""

import os

import pytest

from stack import Stack, phone_context, watched_page
from support import ARTIFACTS


def pytest_collection_modifyitems(items):
    for item in items:
        if "/browser/" in str(item.fspath):
            item.add_marker(pytest.mark.browser)


@pytest.fixture(scope="module", params=["direct", "nginx"])
def stack(request, tmp_path_factory):
    running = Stack(request.param, tmp_path_factory.mktemp(request.param))
    yield running
    running.stop()


@pytest.fixture
def context(browser, stack):
    # ignore_https_errors: the nginx variant's self-signed certificate
    ctx = phone_context(browser, ignore_https_errors=True)
    yield ctx
    ctx.close()


@pytest.fixture
def page(context):
    return watched_page(context)


@pytest.fixture
def shot(stack):
    """Save a phone-size screenshot under test-artifacts/screenshots/."""
    os.makedirs(ARTIFACTS, exist_ok=True)

    def take(page, name):
        path = os.path.join(ARTIFACTS, f"{stack.variant}-{name}.png")
        page.screenshot(path=path, full_page=True)
        return path

    return take
