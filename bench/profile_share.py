"""Profile logged-in ``/share`` in-process (``python bench/profile_share.py [N] [path]``).

Logs in through the emulator on a live server, then renders the page N times on the
Flask test client under cProfile and prints the top functions by own and total time.
"""

import cProfile
import logging
import os
import pstats
import sys
import tempfile
from pathlib import Path

import requests

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests"))
sys.path.insert(0, os.path.join(ROOT, "bench"))

from run import login  # noqa: E402
from stack import Emulator  # noqa: E402
from support import LiveServer, site_config  # noqa: E402

from wxsite import create_app  # noqa: E402


def main():
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    path = sys.argv[2] if len(sys.argv) > 2 else "/share"
    emu = Emulator()
    work = Path(tempfile.mkdtemp())
    config = site_config(work, emu)
    config["TESTING"] = False
    app = create_app(config)
    logging.getLogger("wxsite").handlers[0].stream = open(os.devnull, "w")
    live = LiveServer(app)
    try:
        session = requests.Session()
        session.headers["User-Agent"] = "MicroMessenger bench"
        login(session, live.base_url, scope="snsapi_userinfo")
        session.get(live.url("/share")).raise_for_status()
        client = app.test_client()
        for c in session.cookies:
            client.set_cookie(c.name, c.value, domain="localhost")
        headers = {"User-Agent": "MicroMessenger bench"}
        assert client.get(path, headers=headers).status_code == 200
        profile = cProfile.Profile()
        profile.enable()
        for _ in range(count):
            client.get(path, headers=headers)
        profile.disable()
        stats = pstats.Stats(profile)
        stats.sort_stats("tottime").print_stats(25)
        stats.sort_stats("cumtime").print_stats(45)
    finally:
        live.shutdown()
        emu.stop()


if __name__ == "__main__":
    main()
