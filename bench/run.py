"""wxsite benchmarks: ratios measured side by side in one run (not tests; `make bench`).

1. logged-in signed /share (a real session cookie) vs a separate minimal Flask app under
   the same gunicorn settings: its bare Jinja page of the same markup (target >= 0.95) and
   wechatpy's documented signing recipe on an anonymous page (target >= 1.0); /share on
   SQLite and on PostgreSQL in the same run (target PostgreSQL/SQLite >= 0.9); wrk rounds
   interleaved, medians; SQL statements per logged-in /share, /me and /upload;
2. the site's WeChat calls during that run — target 0 beyond the first token/ticket fetch;
3. cold start of 8 workers hit by concurrent requests — exactly 1 token and 1 ticket
   fetch; 24 simulated hours on the emulator clock — one fetch per credential lifetime;
4. a 20 MB media download — peak memory growth of the process (streamed: < 5 MB);
5. full login round trips (login → authorize → callback → page) per second.
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

from stack import EmulatorProcess, Gunicorn  # noqa: E402
from support import consent  # noqa: E402

from wxsite.wechat import protocol  # noqa: E402

TOKEN_PATHS = (protocol.STABLE_TOKEN, protocol.TOKEN)


def counters(emu):
    return requests.get(emu.base_url + "/_emu/counters").json()


def fetches(before, after, paths):
    return sum(after.get(p, 0) - before.get(p, 0) for p in paths)


def login(session, site_url, user="zhangsan", next_path="/", scope="snsapi_base"):
    """Log ``session`` in through the emulator's authorization page."""
    response = session.get(f"{site_url}/auth/login", params={"next": next_path, "scope": scope})
    response = consent(session, response, user)  # the tests' one walk of the pages
    response.raise_for_status()
    return response


def wrk(url, cookie, seconds, connections=16):
    """Return (requests/second, non-2xx responses, requests) from wrk (2 threads) for ``url``."""
    args = ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", url]
    if cookie:
        args[1:1] = ["-H", f"Cookie: {cookie}"]
    out = subprocess.run(args, capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    done = int(re.search(r"(\d+) requests in", out).group(1))
    return rps, int(non2xx.group(1)) if non2xx else 0, done


_TICK = os.sysconf("SC_CLK_TCK")


def _stat(pid):
    return open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()


def server_cpu(server):
    """Return the CPU seconds a gunicorn server has used: its master, its live workers and the
    workers it has already reaped (max_requests recycles them during the rounds)."""
    master = _stat(server.proc.pid)
    total = sum(int(x) for x in master[11:15])  # utime, stime, cutime, cstime
    for pid in worker_pids(server):
        try:
            worker = _stat(pid)
        except FileNotFoundError:  # reaped meanwhile: now in the master's cutime
            continue
        total += int(worker[11]) + int(worker[12])
    return total / _TICK


def worker_pids(server):
    with open(f"/proc/{server.proc.pid}/task/{server.proc.pid}/children") as f:
        return [int(pid) for pid in f.read().split()]


def worker_boot_cpu(server, url, cookie=""):
    """Return the CPU seconds a worker gunicorn forks anew uses to boot and serve its first
    pages of ``url``.

    gunicorn recycles each worker after max_requests: on a busy site that is paid every few
    seconds per worker, so it is part of what a page costs."""
    before = worker_pids(server)
    os.kill(before[0], 15)
    deadline = time.monotonic() + 30
    while True:
        now = worker_pids(server)
        new = [pid for pid in now if pid not in before]
        if new and len(now) == len(before):
            break
        if time.monotonic() > deadline:
            raise SystemExit("gunicorn did not replace the worker in 30 s")
        time.sleep(0.05)
    for _ in range(20):  # spread over the workers: the new one serves its first pages
        requests.get(url, headers={"Cookie": cookie}).raise_for_status()
    worker = _stat(new[0])
    return (int(worker[11]) + int(worker[12])) / _TICK


def site_cookie(session):
    return "; ".join(
        f"{c.name}={c.value}" for c in session.cookies if c.domain in ("127.0.0.1", "")
    )


#: Requests per page for the statement count (and the WeChat calls they made).
STATEMENT_PROBES = 6


def statements(session, url):
    """Return how many SQL statements one logged-in request for ``url`` sent (warm worker)."""
    counts = []
    for _ in range(STATEMENT_PROBES):  # enough to warm every worker and thread it may land on
        r = session.get(url, headers={"X-Bench-Count": "1"}, allow_redirects=False)
        r.raise_for_status()
        counts.append(int(r.headers["X-Bench-Statements"]))
    return min(counts), max(counts)


def warm_up(url, concurrency=16, requests_each=20):
    """Hit ``url`` from many threads, so every worker and thread has fetched what it caches."""

    def hit():
        with requests.Session() as s:
            for _ in range(requests_each):
                s.get(url)

    threads = [threading.Thread(target=hit) for _ in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def bench_pages(seconds, rounds, postgres=True):
    print(
        "\n## 1–2. logged-in signed /share vs a minimal Flask app "
        "(gunicorn 2 workers × 4 threads each, wrk -t2 -c16)"
    )
    load = os.getloadavg()
    with tempfile.TemporaryDirectory() as work:
        emu = EmulatorProcess()
        # Its own emulator: wechatpy's fetches (each worker fetches its own token, and a
        # restarted worker fetches again) must not count as the site's.
        emu_minimal = EmulatorProcess()
        servers, targets, cookies = [emu_minimal], {}, {}
        try:
            os.makedirs(os.path.join(work, "minimal"))
            minimal = Gunicorn(
                os.path.join(work, "minimal"),
                emu_minimal.base_url,
                workers=2,
                app="minimal_app:app",
            )
            servers.append(minimal)
            targets["bare"] = minimal.base_url + "/bare"
            targets["recipe"] = minimal.base_url + "/recipe"
            server_of = {"bare": minimal, "recipe": minimal}
            engines = {"sqlite": {}}
            if postgres:
                from pgserver import start_server

                pg = start_server()
                engines["postgresql"] = {"WXSITE_DATABASE": pg.create_database()}
            pages = {}
            for name, env in engines.items():
                os.makedirs(os.path.join(work, name))
                site = Gunicorn(
                    os.path.join(work, name), emu.base_url, workers=2, app="bench_app:app", env=env
                )
                servers.append(site)
                server_of[f"/share ({name})"] = site
                session = requests.Session()
                session.headers["User-Agent"] = "MicroMessenger bench"
                login(session, site.base_url, scope="snsapi_userinfo")  # /me asks for it
                key = f"/share ({name})"
                targets[key] = site.base_url + "/share"
                cookies[key] = site_cookie(session)
                session.get(site.base_url + "/share").raise_for_status()  # the referral code
                refreshed = session.get(site.base_url + "/share").headers.get("Set-Cookie")
                pages[name] = {}
                for p in ("/share", "/me", "/upload"):
                    calls_before = counters(emu)
                    pages[name][p] = statements(session, site.base_url + p)
                    made = sum(counters(emu).values()) - sum(calls_before.values())
                    pages[name][p + " wechat"] = made / STATEMENT_PROBES
                pages[name]["cookie re-sent"] = bool(refreshed)
            warm_up(targets["recipe"])
            sizes = {
                k: len(requests.get(u, headers={"Cookie": cookies.get(k, "")}).content)
                for k, u in targets.items()
            }
            boots = {
                "minimal app": worker_boot_cpu(minimal, targets["bare"]),
                "site": worker_boot_cpu(
                    server_of["/share (sqlite)"],
                    targets["/share (sqlite)"],
                    cookies["/share (sqlite)"],
                ),
            }
            before = counters(emu)
            results = {k: [] for k in targets}
            cpu = {k: [] for k in targets}
            order = list(targets.items())
            for i in range(rounds):  # interleaved, so drift hits every page alike
                # Each round starts one page later, so no page always follows the same one.
                for name, url in order[i % len(order) :] + order[: i % len(order)]:
                    used = server_cpu(server_of[name])
                    rps, bad, done = wrk(url, cookies.get(name), seconds)
                    cpu[name].append((server_cpu(server_of[name]) - used) / done * 1e6)
                    if bad:
                        for server in servers[1:]:
                            print(server.log()[-3000:])
                        raise SystemExit(f"{name}: {bad} non-2xx responses — is the session valid?")
                    results[name].append(rps)
            after = counters(emu)
        finally:
            for server in servers:
                server.stop()
            emu.stop()
            if postgres:
                pg.remove()
    med = {k: statistics.median(v) for k, v in results.items()}
    cpu_med = {k: statistics.median(v) for k, v in cpu.items()}
    print(
        f"load average before: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; after: "
        + " ".join(f"{x:.2f}" for x in os.getloadavg())
    )
    print("page".ljust(22) + "bytes".rjust(7) + "  req/s per round".ljust(30) + "median")
    for k, v in results.items():
        rounds_text = " ".join(f"{x:.0f}" for x in v)
        print(f"{k:<22}{sizes[k]:>7}  {rounds_text:<28}{med[k]:>7.0f}")
    # The servers' own CPU per request (master and workers, recycled ones included): what the
    # page costs on a CPU-bound machine, less moved by wrk's share of the CPUs than req/s.
    print("page".ljust(29) + "  server CPU µs per request, per round".ljust(40) + "median")
    for k, v in cpu.items():
        rounds_text = " ".join(f"{x:.0f}" for x in v)
        print(f"{k:<29}  {rounds_text:<38}{cpu_med[k]:>7.0f}")
    print(
        "a new worker's boot and first pages: "
        + ", ".join(f"{k} {v:.2f} s CPU" for k, v in boots.items())
        + " (gunicorn recycles each worker after about 5000 requests)"
    )

    def ratio(page, yardstick):
        # Median of the rounds' own ratios (neighbours in time, so a busy moment on a shared
        # machine hits both), beside the ratio of the medians; then the same from CPU.
        per_round = statistics.median(a / b for a, b in zip(results[page], results[yardstick]))
        by_cpu = statistics.median(b / a for a, b in zip(cpu[page], cpu[yardstick]))
        return (
            f"{per_round:.3f} (ratio of medians {med[page] / med[yardstick]:.3f}); "
            f"from server CPU per request {by_cpu:.3f}"
        )

    print(f"logged-in /share (SQLite) / bare Flask page: {ratio('/share (sqlite)', 'bare')}")
    print("  target >= 0.95")
    print(f"logged-in /share (SQLite) / wechatpy recipe: {ratio('/share (sqlite)', 'recipe')}")
    print("  target >= 1.0")
    if postgres:
        pg = "/share (postgresql)"
        print(f"logged-in /share (PostgreSQL) / bare: {ratio(pg, 'bare')}")
        print(f"logged-in /share (PostgreSQL) / recipe: {ratio(pg, 'recipe')}")
        print(f"logged-in /share (PostgreSQL) / SQLite: {ratio(pg, '/share (sqlite)')}")
        print("  target >= 0.9")
    for name, counts in pages.items():
        text = ", ".join(
            f"{p} {lo}" + (f"–{hi}" if hi != lo else "")
            for p, (lo, hi) in ((p, counts[p]) for p in ("/share", "/me", "/upload"))
        )
        print(
            f"SQL statements per logged-in request on {name}: {text}; session cookie re-sent "
            f"on an unchanged page: {'yes' if counts['cookie re-sent'] else 'no'}"
        )
        wechat = ", ".join(f"{p} {counts[p + ' wechat']:g}" for p in ("/share", "/me", "/upload"))
        print(f"WeChat calls per logged-in request on {name}: {wechat} (target 0)")
    calls = {
        k: after.get(k, 0) - before.get(k, 0) for k in after if after.get(k, 0) != before.get(k, 0)
    }
    print(
        f"the site's WeChat calls during the load: {sum(calls.values())} {calls or ''} (target 0)"
    )


def bench_cold_start():
    print("\n## 3a. cold start: 8 gunicorn workers, 64 concurrent requests on an empty cache")
    with tempfile.TemporaryDirectory() as work:
        emu = EmulatorProcess()
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
        emu = EmulatorProcess()
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
    emu = EmulatorProcess()
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
        emu = EmulatorProcess()
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
    parser.add_argument("--seconds", type=int, default=4, help="wrk duration per round")
    # The machine may be shared: more, shorter rounds give medians that drift less.
    parser.add_argument("--rounds", type=int, default=5, help="interleaved wrk rounds per page")
    parser.add_argument("--logins", type=int, default=100)
    parser.add_argument("--pages-only", action="store_true", help="only the page comparison")
    parser.add_argument("--no-postgresql", action="store_true", help="SQLite only")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("wrk is missing: apt-get install wrk (make bench installs it)")
    print(f"# wxsite bench — {os.cpu_count()} CPUs, Python {sys.version.split()[0]}")
    bench_pages(args.seconds, args.rounds, postgres=not args.no_postgresql)
    if args.pages_only:
        return
    bench_cold_start()
    bench_simulated_day()
    bench_media_memory()
    bench_login(args.logins)


if __name__ == "__main__":
    main()
