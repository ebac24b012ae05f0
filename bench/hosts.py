"""Requests/s of a logged-in page through nginx: one host vs three (not a test; `make bench`).

Both layouts run the same total of gunicorn workers (``--workers``, default 3: one host
with 3 workers, or three hosts with 1 each, 4 threads per worker), on one PostgreSQL and
one Redis, behind nginx round robin, on this machine. The page is a logged-in ``/share``
(session cookie, login row read, signed JS-SDK config). wrk (2 threads) when installed,
else a Python load loop; rounds interleaved, medians. The point (issue 13): several
hosts cost no per-request cross-host work beyond one round trip to the shared stores.
"""

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

import requests

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests"))

from pgserver import start_server  # noqa: E402
from stack import EmulatorProcess, Hosts  # noqa: E402
from support import consent  # noqa: E402

from wxsite.wechat import protocol  # noqa: E402

UA = "Mozilla/5.0 (iPhone) MicroMessenger/8.0.47 bench"
TOKEN_PATHS = (protocol.STABLE_TOKEN, protocol.TOKEN, protocol.TICKET)


def login(site_url, user="zhangsan"):
    """Log a phone in through the emulator's pages; return the ``Cookie`` header value."""
    session = requests.Session()
    session.headers["User-Agent"] = UA
    response = session.get(f"{site_url}/auth/login", params={"next": "/", "scope": "snsapi_base"})
    response = consent(session, response, user)  # the tests' one walk of the pages
    response.raise_for_status()
    cookie = session.cookies.get("wxsite_session")
    assert cookie, "no session cookie after login"
    return f"wxsite_session={cookie}"


def wrk(url, cookie, seconds, connections):
    args = ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "-H", f"Cookie: {cookie}"]
    args += ["-H", f"User-Agent: {UA}", url]
    out = subprocess.run(args, capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return rps, int(bad.group(1)) if bad else 0


def python_load(url, cookie, seconds, connections):
    """wrk's stand-in: ``connections`` threads, each a keep-alive session, for ``seconds``."""
    done, bad = [0] * connections, [0] * connections
    stop = time.monotonic() + seconds

    def run(i):
        with requests.Session() as s:
            s.headers.update({"Cookie": cookie, "User-Agent": UA})
            while time.monotonic() < stop:
                if s.get(url, allow_redirects=False).status_code != 200:
                    bad[i] += 1
                done[i] += 1

    threads = [threading.Thread(target=run, args=(i,)) for i in range(connections)]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(done) / (time.monotonic() - started), sum(bad)


def counters(emu):
    return requests.get(emu.base_url + "/_emu/counters").json()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=5, help="load duration per round")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds per layout")
    parser.add_argument("--workers", type=int, default=3, help="gunicorn workers in total")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--python", action="store_true", help="the Python loop even with wrk")
    args = parser.parse_args()
    tool = "wrk -t2" if shutil.which("wrk") and not args.python else "python threads"
    load = wrk if tool.startswith("wrk") else python_load
    total = args.workers
    if total % 3:
        raise SystemExit("--workers must be a multiple of 3 (same total on 1 and 3 hosts)")
    print(f"# wxsite bench: hosts — {os.cpu_count()} CPUs, Python {sys.version.split()[0]}")
    print(
        f"\n## logged-in /share through nginx: 1 host × {total} workers vs 3 hosts × "
        f"{total // 3} worker(s), 4 threads each; PostgreSQL + Redis; {tool} "
        f"-c{args.connections}, {args.rounds} × {args.seconds} s interleaved"
    )
    with tempfile.TemporaryDirectory() as work:
        pg = start_server()
        emu = EmulatorProcess()
        layouts = {}
        try:
            for name, count, workers in (("1 host", 1, total), ("3 hosts", 3, total // 3)):
                layouts[name] = Hosts(
                    os.path.join(work, name.replace(" ", "-")),
                    pg,
                    count=count,
                    workers=workers,
                    emulator=emu,
                )
            cookies = {name: login(c.base_url) for name, c in layouts.items()}
            for name, cluster in layouts.items():  # warm every worker: token, ticket, pools
                load(cluster.url("/share"), cookies[name], 1, args.connections)
            before = counters(emu)
            results = {name: [] for name in layouts}
            for _ in range(args.rounds):
                for name, cluster in layouts.items():
                    rps, bad = load(
                        cluster.url("/share"), cookies[name], args.seconds, args.connections
                    )
                    if bad:
                        raise SystemExit(f"{name}: {bad} non-2xx answers — is the session valid?")
                    results[name].append(rps)
            after = counters(emu)
        finally:
            for cluster in layouts.values():
                cluster.stop()
            emu.stop()
            pg.remove()
    med = {k: statistics.median(v) for k, v in results.items()}
    print("layout".ljust(10) + "req/s per round".ljust(30) + "median")
    for name, values in results.items():
        print(f"{name:<10}{' '.join(f'{v:.0f}' for v in values):<30}{med[name]:.0f}")
    print(f"3 hosts / 1 host: {med['3 hosts'] / med['1 host']:.3f} (same total workers)")
    calls = sum(after.get(p, 0) - before.get(p, 0) for p in TOKEN_PATHS)
    print(f"token/ticket fetches during the load: {calls} (target 0)")


if __name__ == "__main__":
    main()
