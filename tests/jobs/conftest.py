"""Fixtures of the job tests: WeChat Pay behind a faulty front, sites with a real consumer."""

import pytest

from jobs_helpers import PayFront
from support import LiveServer, site_config, wechat_login
from test_redis_store import redis_url  # noqa: F401 - fixture: a real redis-server
from wxsite import create_app, jobs

#: A site whose in-process consumer runs jobs at once: short backoff, three tries.
FAST = {
    "WXSITE_JOBS_CONSUMER": "thread",
    "WXSITE_JOBS_ATTEMPTS": 3,
    "WXSITE_JOBS_RETRY_BASE": 0.05,
    "WXSITE_JOBS_RETRY_MAX": 0.2,
    "JOBS_PERIODIC": False,
    "JOBS_POLL_MAX": 0.2,
}


@pytest.fixture(autouse=True)
def stop_job_threads():
    """No consumer thread outlives its test."""
    yield
    jobs.stop_all()


@pytest.fixture
def front(emu):
    server = PayFront(emu.base_url)
    yield server
    server.shutdown()


@pytest.fixture
def site(tmp_path, emu, front, phone):
    """``(app, live)``: a site with an in-process consumer, WeChat Pay behind ``front``;
    ``phone`` is logged in there."""
    app = create_app(site_config(tmp_path, emu, WXPAY_API_BASE=front.base_url, **FAST))
    live = LiveServer(app)
    wechat_login(phone, live)
    yield app, live
    live.shutdown()
