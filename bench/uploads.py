"""Upload pipeline: 20 × 2 MB images, local folder vs S3 (SeaweedFS) — not a test; `make bench`.

Through the real site: the emulator serves the media (as WeChat's media/get would), the
site (gunicorn, 1 worker × 1 thread, so one process and one malloc arena are the measure) downloads
each one, checks and re-encodes it, stores it (a folder, or a SeaweedFS bucket through
boto3) and records its row. One ``POST /upload`` per image, ``--concurrency`` at a time;
rounds interleaved (local, S3, local, …), each round as another person (no duplicates).

Figures: images/s and MB/s of the 20 (source bytes), the S3/local ratio (goal >= 0.8),
and the worker's peak RSS (VmHWM) growth over the measured rounds, after two warm-up
uploads (goal < 10 MB), and from the idle worker (the first decode included: nothing is
held whole in memory but the decoded image itself, 1920×1440 RGB = 8 MB). With N threads
each one's first image grows the process again (glibc gives every thread its own arena).
"""

import argparse
import io
import os
import re
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

import requests

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests"))

from s3server import start_server as start_s3  # noqa: E402
from stack import EmulatorProcess, Gunicorn, host_root  # noqa: E402
from support import consent  # noqa: E402

UA = "Mozilla/5.0 (iPhone) MicroMessenger/8.0.47 bench"
USERS = ["zhangsan", "lisi", "wangwu", "zhaoliu", "sunqi", "zhouba"]


def photo(seed, megabytes=2.0):
    """A real JPEG of about ``megabytes`` (noise: it does not compress away), 1920×1440."""
    from PIL import Image

    width, height = 1920, 1440
    noise = Image.frombytes("RGB", (width, height), os.urandom(width * height * 3))
    for quality in (84, 80, 88, 76, 92):
        buffer = io.BytesIO()
        noise.save(buffer, "JPEG", quality=quality)
        if abs(len(buffer.getvalue()) - megabytes * 1e6) < 0.25e6:
            break
    return buffer.getvalue()


def login(site_url, user):
    session = requests.Session()
    session.headers["User-Agent"] = UA
    response = session.get(f"{site_url}/auth/login", params={"next": "/", "scope": "snsapi_base"})
    response = consent(session, response, user)  # the tests' one walk of the pages
    response.raise_for_status()
    page = session.get(f"{site_url}/upload").text
    token = re.search(r'name="csrf-token" content="([^"]+)"', page).group(1)
    session.headers.update({"X-CSRFToken": token, "Accept": "application/json"})
    return session


def worker_pid(site):
    with open(f"/proc/{site.proc.pid}/task/{site.proc.pid}/children") as f:
        (pid,) = f.read().split()  # one worker
    return int(pid)


def peak_rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        return int(re.search(r"VmHWM:\s+(\d+) kB", f.read()).group(1)) / 1024


def upload_all(site, session, media_ids, concurrency):
    def one(media_id):
        answer = session.post(site.base_url + "/upload", json={"server_ids": [media_id]})
        answer.raise_for_status()
        (item,) = answer.json()["items"]
        if item["status"] != "ok":
            raise SystemExit(f"upload failed: {item}")
        return item

    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        items = list(pool.map(one, media_ids))
    return time.perf_counter() - started, items


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=20)
    parser.add_argument("--megabytes", type=float, default=2.0)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds per store")
    parser.add_argument("--concurrency", type=int, default=1, help="uploads at once")
    parser.add_argument("--threads", type=int, default=1, help="gunicorn threads")
    args = parser.parse_args()
    if args.rounds + 1 > len(USERS):
        raise SystemExit(f"at most {len(USERS) - 1} rounds (one fake user each, plus warm-up)")
    print(f"# wxsite bench: uploads — {os.cpu_count()} CPUs, Python {sys.version.split()[0]}")
    print(
        f"\n## {args.images} × {args.megabytes:g} MB JPEG through POST /upload, local folder vs "
        f"S3 (SeaweedFS); gunicorn 1 worker × {args.threads} thread(s); {args.concurrency} at a time; "
        f"{args.rounds} interleaved rounds"
    )
    with tempfile.TemporaryDirectory() as work:
        emu = EmulatorProcess()
        s3 = start_s3()
        sites = {}
        try:
            env = {"WXSITE_LOGIN_STARTS_PER_IP": "1000"}
            for name, extra in (("local", {}), ("s3", s3.settings(s3.create_bucket("wxbench")))):
                folder = os.path.join(work, name)
                os.makedirs(folder)
                sites[name] = Gunicorn(
                    folder,
                    emu.base_url,
                    workers=1,
                    threads=args.threads,
                    env={**env, **extra},
                    root=host_root(folder),  # S3 mode's temp folder: this site's instance/
                )
            blobs = [photo(i, args.megabytes) for i in range(args.images)]
            total_mb = sum(len(b) for b in blobs) / 1e6
            media = [emu_media(emu, b) for b in blobs]
            warm = [emu_media(emu, photo(100 + i, args.megabytes)) for i in range(2)]
            sessions = {n: [login(s.base_url, u) for u in USERS] for n, s in sites.items()}
            pids = {n: worker_pid(s) for n, s in sites.items()}
            idle = {n: peak_rss_mb(pid) for n, pid in pids.items()}
            for name, site in sites.items():  # imports, pools, the first decode
                upload_all(site, sessions[name][0], warm, 1)
            warmed = {n: peak_rss_mb(pid) for n, pid in pids.items()}
            seconds = {n: [] for n in sites}
            for round_ in range(1, args.rounds + 1):
                order = list(sites.items())
                for name, site in order if round_ % 2 else order[::-1]:  # drift hits both
                    took, items = upload_all(site, sessions[name][round_], media, args.concurrency)
                    seconds[name].append(took)
            peak = {n: peak_rss_mb(pid) for n, pid in pids.items()}
            stored = len(s3.keys("wxbench", "images/"))
        finally:
            for site in sites.values():
                site.stop()
            emu.stop()
            s3.remove()
    print(f"{args.images} images, {total_mb:.1f} MB per round; {stored} objects in the bucket")
    print(
        "store".ljust(8)
        + "s per round".ljust(26)
        + "images/s  MB/s   peak RSS MB: idle → warm → end"
    )
    rate = {}
    for name, values in seconds.items():
        med = statistics.median(values)
        rate[name] = args.images / med
        print(
            f"{name:<8}{' '.join(f'{v:.2f}' for v in values):<26}{rate[name]:>8.1f}"
            f"{total_mb / med:>7.1f}   {idle[name]:.1f} → {warmed[name]:.1f} → {peak[name]:.1f}"
        )
    print(f"S3 / local throughput: {rate['s3'] / rate['local']:.3f} (goal >= 0.8)")
    for name in sites:
        print(
            f"{name}: peak RSS growth over the measured rounds {peak[name] - warmed[name]:.1f} MB "
            f"(goal < 10 MB); from the idle worker {peak[name] - idle[name]:.1f} MB"
        )


def emu_media(emu, data):
    answer = requests.post(
        emu.base_url + "/_emu/media?type=image", data=data, headers={"Content-Type": "image/jpeg"}
    )
    answer.raise_for_status()
    return answer.json()["media_id"]


if __name__ == "__main__":
    main()
