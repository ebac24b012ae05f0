"""Time or profile logged-in pages in-process (not a test; for finding where time goes).

``python bench/profile_share.py time [N]`` calls the site's WSGI app directly (no server,
no test client) with a real logged-in session cookie, interleaved with the minimal Flask
app of ``make bench`` (its bare page and wechatpy's recipe), and prints microseconds per
request and the ratios. It leaves out gunicorn and the network, which cost every app
alike, so its ratios are lower than wrk's; use it to see a step's direction quickly.

``python bench/profile_share.py profile [N] [PATH]`` renders PATH (``/share``) N times
under cProfile and prints the top functions by own and total time.

``--postgresql`` runs the site on a PostgreSQL server of its own instead of SQLite.
"""

import argparse
import cProfile
import gc
import io
import logging
import os
import pstats
import sys
import tempfile
import time
from pathlib import Path

import requests

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests"))
sys.path.insert(0, os.path.join(ROOT, "bench"))

from run import login  # noqa: E402
from stack import EmulatorProcess  # noqa: E402
from support import LiveServer, site_config  # noqa: E402

from wxsite import create_app  # noqa: E402

UA = "MicroMessenger bench"


def environ_for(path, cookie=""):
    """Return a WSGI environ like gunicorn's for a GET of ``path``."""
    path, _, query = path.partition("?")
    return {
        "REQUEST_METHOD": "GET",
        "SCRIPT_NAME": "",
        "PATH_INFO": path,
        "QUERY_STRING": query,
        "RAW_URI": path + (f"?{query}" if query else ""),
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "HTTP_HOST": "127.0.0.1:8000",
        "HTTP_USER_AGENT": UA,
        "HTTP_ACCEPT": "*/*",
        "HTTP_COOKIE": cookie,
        "wsgi.url_scheme": "http",
        "wsgi.version": (1, 0),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
    }


def call(app, environ):
    """Run one request through ``app``; return (status, body bytes)."""
    env = dict(environ)
    env["wsgi.input"] = io.BytesIO(b"")
    answer = []

    def start_response(status, headers, exc_info=None):
        answer.append((status, headers))

    result = app(env, start_response)
    try:
        body = b"".join(result)
    finally:
        if hasattr(result, "close"):
            result.close()
    return answer[0][0], answer[0][1], body


def logged_in_site(work, emu, postgres):
    """Return (site app, cookie header) for a person logged in with snsapi_userinfo."""
    config = site_config(work, emu)
    if postgres:
        from pgserver import start_server

        server = start_server()
        config["WXSITE_DATABASE"] = server.create_database()
    config["TESTING"] = False
    app = create_app(config)
    for handler in logging.getLogger("wxsite").handlers:
        handler.stream = open(os.devnull, "w")
    live = LiveServer(app)
    try:
        session = requests.Session()
        session.headers["User-Agent"] = UA
        login(session, live.base_url, scope="snsapi_userinfo")
        session.get(live.url("/share")).raise_for_status()  # the referral code, the CSRF token
    finally:
        live.shutdown()
    cookie = "; ".join(f"{c.name}={c.value}" for c in session.cookies if c.name == "wxsite_session")
    return app, cookie


def timed(app, environ, count):
    """Return (wall, this thread's CPU) microseconds per request."""
    started, cpu = time.perf_counter(), time.thread_time()
    for _ in range(count):
        call(app, environ)
    return (
        (time.perf_counter() - started) / count * 1e6,
        (time.thread_time() - cpu) / count * 1e6,
    )


def function_calls(app, environ, count=50):
    """Return how many Python functions one request calls (cProfile's count, C calls too)."""
    prof = cProfile.Profile()
    prof.enable()
    for _ in range(count):
        call(app, environ)
    prof.disable()
    return pstats.Stats(prof).total_calls // count


def statements(app, environ, count=20):
    """Return the fewest SQL statements one request sent (as bench/bench_app.py counts them:
    at the driver, PRAGMAs, pings and transaction control included)."""
    import sqlite3

    import psycopg

    seen = [0]

    def counted(real):
        def wrapper(*args, **kwargs):
            seen[0] += 1
            return real(*args, **kwargs)

        return wrapper

    saved = psycopg.Cursor.execute, psycopg.Cursor.executemany, sqlite3.connect
    psycopg.Cursor.execute = counted(saved[0])
    psycopg.Cursor.executemany = counted(saved[1])

    def connect(*args, **kwargs):
        conn = saved[2](*args, **kwargs)
        conn.set_trace_callback(lambda _sql: seen.__setitem__(0, seen[0] + 1))
        return conn

    sqlite3.connect = connect
    from wxsite import store

    call(app, environ)  # this thread's connection is open (and kept, on SQLite)
    held = getattr(app.extensions[store.HELD], "held", None)
    raw = held.conn.native.conn if held is not None and held.conn.name == "sqlite" else None
    if raw is not None:  # opened before the patch: trace it from here on
        raw.set_trace_callback(lambda _sql: seen.__setitem__(0, seen[0] + 1))
    try:
        counts = []
        for _ in range(count):
            seen[0] = 0
            call(app, environ)
            counts.append(seen[0])
    finally:
        psycopg.Cursor.execute, psycopg.Cursor.executemany, sqlite3.connect = saved
        if raw is not None:
            raw.set_trace_callback(None)
    return min(counts), max(counts)


def compare(site, cookie, emu, count, rounds):
    os.environ["WXSITE_EMULATOR_URL"] = emu.base_url
    import minimal_app

    targets = {
        "bare": (minimal_app.app, environ_for("/bare")),
        "recipe": (minimal_app.app, environ_for("/recipe")),
        "/share": (site, environ_for("/share", cookie)),
        "/me": (site, environ_for("/me", cookie)),
        "/upload": (site, environ_for("/upload", cookie)),
    }
    for name, (app, env) in targets.items():
        status, headers, body = call(app, env)
        assert status.startswith("200"), (name, status, body[:300])
        assert not any(k == "Set-Cookie" for k, _ in headers), (name, "cookie re-sent")
        timed(app, env, 200)  # warm
    results = {k: [] for k in targets}
    gc.collect()
    for _ in range(rounds):
        for name, (app, env) in targets.items():
            results[name].append(timed(app, env, count))
    # The machine is shared: many short interleaved rounds, and the fastest round of each
    # page is the figure least disturbed by other processes (CPU time leaves out a
    # PostgreSQL server's own work, so compare engines by wall time).
    wall = {k: min(w for w, _ in v) for k, v in results.items()}
    cpu = {k: min(c for _, c in v) for k, v in results.items()}
    # Python function calls per request: not time, but the same on a busy machine.
    calls = {k: function_calls(app, env) for k, (app, env) in targets.items()}
    print(
        f"{'':<10}{'wall (min)':>12}{'CPU (min)':>14}{'calls':>8}   "
        f"µs per request over {rounds} rounds; Python function calls per request"
    )
    for name in results:
        print(f"{name:<10}{wall[name]:>12.0f}{cpu[name]:>14.0f}{calls[name]:>8}")
    for page in ("/share", "/me", "/upload"):
        low, high = statements(*targets[page])
        print(f"SQL statements per {page}: {low}" + (f"–{high}" if high != low else ""))
    for page in ("/share", "/me", "/upload"):
        print(
            f"{page} speed / bare: {wall['bare'] / wall[page]:.3f} wall, "
            f"{cpu['bare'] / cpu[page]:.3f} CPU; / recipe: {wall['recipe'] / wall[page]:.3f} "
            f"wall, {cpu['recipe'] / cpu[page]:.3f} CPU"
        )


def profile(site, cookie, count, path):
    env = environ_for(path, cookie)
    status, _, body = call(site, env)
    assert status.startswith("200"), (status, body[:300])
    prof = cProfile.Profile()
    prof.enable()
    for _ in range(count):
        call(site, env)
    prof.disable()
    stats = pstats.Stats(prof)
    stats.sort_stats("tottime").print_stats(30)
    stats.sort_stats("cumtime").print_stats(60)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=["time", "profile"])
    parser.add_argument(
        "count", type=int, nargs="?", default=None, help="requests (per round when timing)"
    )
    parser.add_argument("path", nargs="?", default="/share")
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--postgresql", action="store_true")
    args = parser.parse_args()
    emu = EmulatorProcess()
    try:
        site, cookie = logged_in_site(Path(tempfile.mkdtemp()), emu, args.postgresql)
        if args.mode == "time":
            compare(site, cookie, emu, args.count or 100, args.rounds)
        else:
            profile(site, cookie, args.count or 2000, args.path)
    finally:
        emu.stop()


if __name__ == "__main__":
    main()
