"""wxsite benchmarks: ratios measured side by side in one run (not tests; `make bench`).

1. signed JS-SDK page (/share, logged in) vs a bare page of the same size from the same
   app, with wrk against the same gunicorn — target ratio >= 0.95;
2. WeChat calls during that run — target 0 beyond the first token/ticket fetch;
3. cold start of 8 workers hit by concurrent requests — exactly 1 token and 1 ticket
   fetch; 24 simulated hours on the emulator clock — one fetch per credential lifetime;
4. a 20 MB media download — peak memory growth of the process (streamed: < 5 MB);
5. full login round trips (login → authorize → callback → page) per second.
"""

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time

import requests

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests"))

from stack import Emulator, Gunicorn  # noqa: E402

from wxsite.wechat import protocol  # noqa: E402

TOKEN_PATHS = (protocol.STABLE_TOKEN, protocol.TOKEN)


def counters(emu):
    return requests.get(emu.base_url + "/_emu/counters").json()


def fetches(before, after, paths):
    return sum(after.get(p, 0) - before.get(p, 0) for p in paths)


def login(session, site_url, user="zhangsan", next_path="/"):
    """Log ``session`` in through the emulator's authorization page."""
    response = session.get(f"{site_url}/auth/login", params={"next": next_path})
    if "/connect/oauth2/authorize" in response.url and "<form" in response.text:
        fields = dict(re.findall(r'<input[^>]*name="([^"]+)"[^>]*value="([^"]*)"', response.text))
        fields.update(user=user, action="allow")
        action = re.search(r'<form[^>]*action="([^"]+)"', response.text).group(1)
        base = response.url.split("/connect/")[0]
        response = session.post(action if action.startswith("http") else base + action, data=fields)
    response.raise_for_status()
    return response


def wrk(url, cookie, seconds, connections=16):
    """Return requests/second from wrk (2 threads) for ``url``."""
    args = ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", url]
    if cookie:
        args[1:1] = ["-H", f"Cookie: {cookie}"]
    out = subprocess.run(args, capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return rps, int(non2xx.group(1)) if non2xx else 0


def bench_pages(seconds, rounds):
    print("\n## 1–2. signed page vs bare page (gunicorn 2 workers × 4 threads, wrk -t2 -c16)")
    with tempfile.TemporaryDirectory() as work:
        emu = Emulator()
        site = Gunicorn(work, emu.base_url, workers=2, app="bench_app:app")
        try:
            session = requests.Session()
            session.headers["User-Agent"] = "MicroMessenger bench"
            login(session, site.base_url)
            cookie = "; ".join(
                f"{c.name}={c.value}" for c in session.cookies if c.domain in ("127.0.0.1", "")
            )
            signed, bare = site.base_url + "/share", site.base_url + "/_bench/bare"
            sizes = [len(session.get(u).content) for u in (signed, bare)]
            before = counters(emu)
            results = {"signed": [], "bare": []}
            for _ in range(rounds):  # interleaved, so drift hits both alike
                for name, url in (("bare", bare), ("signed", signed)):
                    rps, bad = wrk(url, cookie, seconds)
                    if bad:
                        raise SystemExit(f"{name}: {bad} non-2xx responses — is the session valid?")
                    results[name].append(rps)
            after = counters(emu)
        finally:
            site.stop()
            emu.stop()
    s, b = max(results["signed"]), max(results["bare"])
    print(f"page sizes: signed {sizes[0]} B, bare {sizes[1]} B")
    print(
        f"signed /share: {s:.0f} req/s   bare: {b:.0f} req/s   ratio {s / b:.3f} (target >= 0.95)"
    )
    calls = {
        k: after.get(k, 0) - before.get(k, 0) for k in after if after.get(k, 0) != before.get(k, 0)
    }
    print(f"WeChat calls during the load: {sum(calls.values())} {calls or ''} (target 0)")


def bench_cold_start():
    print("\n## 3a. cold start: 8 gunicorn workers, 64 concurrent requests on an empty cache")
    with tempfile.TemporaryDirectory() as work:
        emu = Emulator()
        site = Gunicorn(work, emu.base_url, workers=8, threads=8)
        try:
            sessions = []
            for _ in range(8):
                s = requests.Session()
                s.headers["User-Agent"] = "MicroMessenger bench"
                login(s, site.base_url)
                sessions.append(s)
            requests.post(
                emu.base_url + "/_emu/faults", json={"path": protocol.STABLE_TOKEN, "stall": 0.5}
            )
            before = counters(emu)
            barrier = threading.Barrier(64)
            statuses = []

            def hit(s):
                barrier.wait()
                statuses.append(s.get(site.base_url + "/share").status_code)

            threads = [threading.Thread(target=hit, args=(sessions[i % 8],)) for i in range(64)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            after = counters(emu)
        finally:
            site.stop()
            emu.stop()
    print(f"responses: {sorted(set(statuses))} ×{len(statuses)}")
    print(
        f"token fetches: {fetches(before, after, TOKEN_PATHS)}  "
        f"ticket fetches: {fetches(before, after, [protocol.TICKET])} (target 1 and 1)"
    )


def bench_simulated_day(hours=24, step=60):
    print(f"\n## 3b. {hours} simulated hours, 8 threads asking every {step} s of emulator time")
    from wxsite import store
    from wxsite.wechat import WeChatClient

    with tempfile.TemporaryDirectory() as work:
        emu = Emulator()
        try:
            path = os.path.join(work, "db.sqlite3")
            db = store.connect(path)
            store.migrate(db)
            db.close()
            offset = [0.0]
            client = WeChatClient(
                protocol.EMULATOR_APPID,
                protocol.EMULATOR_SECRET,
                store.CredentialStore(path),
                api_base=emu.base_url,
                clock=lambda: time.time() + offset[0],
            )
            before = counters(emu)
            for _ in range(hours * 3600 // step):
                threads = [threading.Thread(target=client.jsapi_ticket) for _ in range(8)]
                for t in threads:
                    t.start()
                for t in threads:
                    t.join()
                offset[0] += step
                requests.post(emu.base_url + "/_emu/clock", json={"advance": step})
            after = counters(emu)
        finally:
            emu.stop()
    lifetimes = hours * 3600 / protocol.TOKEN_LIFETIME
    tok, tic = fetches(before, after, TOKEN_PATHS), fetches(before, after, [protocol.TICKET])
    print(
        f"token fetches: {tok}, ticket fetches: {tic} over {lifetimes:.0f} lifetimes of 7200 s "
        f"(refreshing 300 s early: {hours * 3600 / (7200 - 300):.1f} expected)"
    )


MEMORY_PROBE = """
import os, resource, sys, tempfile
from wxsite import store
from wxsite.wechat import WeChatClient, protocol
base, media_id, small_id = sys.argv[1:4]
work = tempfile.mkdtemp()
path = os.path.join(work, "db")
db = store.connect(path); store.migrate(db); db.close()
client = WeChatClient(protocol.EMULATOR_APPID, protocol.EMULATOR_SECRET, store.CredentialStore(path), api_base=base)
client.download_media(small_id, work, 64 << 20).discard()  # warm up imports, pools, token
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
d = client.download_media(media_id, work, 64 << 20)
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(d.size, (after - before) / 1024)
d.discard()
"""


def bench_media_memory(megabytes=20):
    print(f"\n## 4. downloading a {megabytes} MB media file")
    emu = Emulator()
    try:

        def upload(data):
            r = requests.post(
                emu.base_url + "/_emu/media?type=image",
                data=data,
                headers={"Content-Type": "image/jpeg"},
            )
            return r.json()["media_id"]

        big = upload(b"\xff\xd8\xff\xe0" + os.urandom(megabytes * 1024 * 1024 - 4))
        small = upload(b"\xff\xd8\xff\xe0" + os.urandom(1024))
        out = subprocess.run(
            [sys.executable, "-c", MEMORY_PROBE, emu.base_url, big, small],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
    finally:
        emu.stop()
    print(
        f"downloaded {int(out[0]) / 1e6:.1f} MB; peak RSS growth {float(out[1]):.2f} MB (target < 5 MB)"
    )


def bench_login(count):
    print(f"\n## 5. full login round trips through the emulator ({count} sequential)")
    with tempfile.TemporaryDirectory() as work:
        emu = Emulator()
        # Every login starts from this one IP: lift the per-IP limit for the measurement.
        site = Gunicorn(
            work, emu.base_url, workers=2, env={"WXSITE_LOGIN_STARTS_PER_IP": str(count * 2)}
        )
        try:
            first = requests.Session()
            first.headers["User-Agent"] = "MicroMessenger bench"
            login(first, site.base_url)  # picks the user once; later logins are silent
            user_cookie = {c.name: c.value for c in first.cookies if c.name.startswith("wxemu_")}
            started = time.perf_counter()
            for _ in range(count):
                s = requests.Session()
                s.headers["User-Agent"] = "MicroMessenger bench"
                s.cookies.update(user_cookie)
                r = s.get(f"{site.base_url}/auth/login", params={"next": "/"})
                assert (
                    r.status_code == 200 and r.url.split("#")[0].rstrip("/") == site.base_url
                ), r.url
            elapsed = time.perf_counter() - started
        finally:
            site.stop()
            emu.stop()
    print(
        f"{count / elapsed:.1f} logins/s ({elapsed / count * 1000:.1f} ms each: 4 HTTP hops + code exchange)"
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=5, help="wrk duration per round")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved wrk rounds per page")
    parser.add_argument("--logins", type=int, default=100)
    args = parser.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("wrk is missing: apt-get install wrk (make bench installs it)")
    print(f"# wxsite bench — {os.cpu_count()} CPUs, Python {sys.version.split()[0]}")
    bench_pages(args.seconds, args.rounds)
    bench_cold_start()
    bench_simulated_day()
    bench_media_memory()
    bench_login(args.logins)


if __name__ == "__main__":
    main()
