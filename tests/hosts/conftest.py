"""Three hosts for real: gunicorn ×3 behind nginx, PostgreSQL, Redis, SeaweedFS, the emulator.

One stack per module (starting it is most of the cost). Hosts are addressed directly
(``cluster.hosts[i].url(...)``) and through the balancer (``cluster.url(...)``).
"""

import pytest

from pgserver import shared_server as shared_postgres
from s3server import shared_server
from stack import Hosts
from hosts_helpers import DEADLINE, PUSH_TOKEN
from support import EmulatorControl


def pytest_collection_modifyitems(items):
    for item in items:
        if "/hosts/" in str(item.fspath):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    running = Hosts(
        tmp_path_factory.mktemp("hosts"),
        shared_postgres(),
        shared_server(),
        count=3,
        workers=2,
        threads=4,
        env={
            "WXSITE_DEADLINE": str(DEADLINE),
            "WXSITE_HTTP_TIMEOUT": str(DEADLINE),
            # Every test logs several people in from 127.0.0.1.
            "WXSITE_LOGIN_STARTS_PER_IP": "10000",
            # Web hosts only queue jobs; the job test runs `wx worker` on the host it picks.
            "WXSITE_JOBS_CONSUMER": "off",
            # Push on (the emulator's 服务器配置 points at one host at a time): follow to
            # log in crosses hosts.
            "WX_PUSH_TOKEN": PUSH_TOKEN,
        },
    )
    yield running
    running.stop()


@pytest.fixture
def emu(cluster):
    """The stack's emulator: counters zeroed, no faults queued (its tokens are kept)."""
    control = EmulatorControl(cluster.emulator.base_url)
    control.clear_faults()
    control.reset_counters()
    yield control
    control.clear_faults()
