"""Three identical hosts behind nginx (issue 13, item 4): nothing a request needs is per host.

The stack (conftest.py): three gunicorn hosts (2 workers × 4 threads each, own process
group, own folder and instance folder, one SECRET_KEY) behind nginx round robin; one
PostgreSQL database, one Redis (credentials), one SeaweedFS bucket (media); the emulator
as WeChat. Hosts are addressed directly (A, B, C) and through the balancer.

The tests share the stack and run in file order: the kill -9 test is last (host A stays
dead). Each one that needs cold credentials makes them cold itself (``make_cold``).
"""

import io
import os
import re
import shutil
import threading
import time
from urllib.parse import urlsplit

import pytest
import requests
from PIL import Image

from hosts_helpers import (
    APPID,
    LEASE,
    PUSH_TOKEN,
    check_signed,
    log_in,
    make_cold,
    phone,
    upstream,
)
from stack import VENV_BIN, Process
from support import DESKTOP_UA, callback_url, csrf_token, in_parallel
from wxsite.auth.views import MAX_ACCOUNT_FAILURES, MAX_CLIENT_FAILURES
from wxsite.wechat import protocol

PASSWORD = "correct horse battery"


def sites(cluster):
    """Host A, B, C and the balancer, in that order."""
    return [*cluster.hosts, cluster]


def is_logged_in(session, site):
    """True when ``site`` shows ``/me`` to ``session``; False when it sends it to log in."""
    response = session.get(site.url("/me"), allow_redirects=False)
    if response.status_code == 302 and "/auth/login" in response.headers["Location"]:
        return False
    assert response.status_code == 200, (site.base_url, response.status_code, response.text[:300])
    return True


def openid(emu, user):
    return emu.users()[user]["openids"][APPID]


# -- 1. one token, one ticket for the whole cluster ---------------------------------------


def test_cold_share_burst_fetches_one_token_and_one_ticket(cluster, emu):
    make_cold(cluster)
    targets = sites(cluster)
    users = ["zhangsan", "lisi", "wangwu", "sunqi", "zhouba"]
    # Ten people's logins, made through every host and the balancer.
    cookies = [
        log_in(targets[i % 4], users[i % len(users)]).cookies["wxsite_session"] for i in range(10)
    ]
    emu.reset_counters()
    # 40 renders at once: each login on four sites, every host hit directly and through nginx.
    plan = [(cookies[i % 10], targets[i % 4]) for i in range(40)]
    answers = in_parallel(
        [lambda c=c, s=s: phone(c).get(s.url("/share"), allow_redirects=False) for c, s in plan]
    )
    for (_, site), answer in zip(plan, answers):
        assert not isinstance(answer, Exception), answer
        assert answer.status_code == 200, (site.base_url, answer.status_code, answer.text[:300])
    counts = emu.counters()
    assert counts[protocol.STABLE_TOKEN] + counts[protocol.TOKEN] == 1, counts
    assert counts[protocol.TICKET] == 1, counts
    for (_, site), answer in zip(plan, answers):
        check_signed(cluster, emu, answer, site.url("/share"))
    through_nginx = {upstream(a) for (_, s), a in zip(plan, answers) if s is cluster}
    assert through_nginx == {f"127.0.0.1:{h.port}" for h in cluster.hosts}


# -- 2. logins are shared, and so is logging out ------------------------------------------


def test_login_on_a_works_on_b_and_c_and_logout_on_b_ends_it_everywhere(cluster, emu):
    a, b, c = cluster.hosts
    cookie = log_in(a, "zhangsan").cookies["wxsite_session"]
    for site in (a, b, c, cluster):
        me = phone(cookie).get(site.url("/me"), allow_redirects=False)
        assert me.status_code == 200 and openid(emu, "zhangsan") in me.text, site.base_url

    on_b = phone(cookie)
    token = csrf_token(on_b.get(b.url("/me")).text)
    out = on_b.post(b.url("/auth/logout"), data={"csrf_token": token}, allow_redirects=False)
    assert out.status_code == 302
    # The old cookie, as a thief or a stale tab would present it, is dead on every host.
    for site in (a, b, c, cluster, cluster, cluster):
        assert not is_logged_in(phone(cookie), site), site.base_url


def test_login_through_the_balancer_is_one_session_on_every_host(cluster, emu):
    a, b, c = cluster.hosts
    # The login's start, callback and landing page each go to whichever host is next.
    cookie = log_in(cluster, "lisi").cookies["wxsite_session"]
    seen = set()
    for _ in range(6):
        response = phone(cookie).get(cluster.url("/me"), allow_redirects=False)
        assert response.status_code == 200 and openid(emu, "lisi") in response.text
        seen.add(upstream(response))
    assert len(seen) == 3, seen
    assert all(is_logged_in(phone(cookie), host) for host in (a, b, c))

    through = phone(cookie)
    token = csrf_token(through.get(cluster.url("/me")).text)
    out = through.post(
        cluster.url("/auth/logout"), data={"csrf_token": token}, allow_redirects=False
    )
    assert out.status_code == 302
    assert not any(is_logged_in(phone(cookie), site) for site in (a, b, c, cluster))


# -- 3. media in the shared bucket, owner-only on every host ------------------------------


def test_upload_through_a_is_served_to_its_owner_from_b_and_c_only(cluster, emu):
    a, b, c = cluster.hosts
    buffer = io.BytesIO()
    Image.new("RGB", (320, 240), (30, 120, 200)).save(buffer, "JPEG")
    server_id = emu.upload_media(buffer.getvalue(), "image/jpeg")

    owner = log_in(b, "wangwu")
    # The page's CSRF token comes from B, the upload goes to A: no host keeps it to itself.
    token = csrf_token(owner.get(b.url("/upload")).text)
    answer = owner.post(
        a.url("/upload"),
        json={"server_ids": [server_id]},
        headers={"X-CSRFToken": token, "Accept": "application/json"},
    )
    assert answer.status_code == 200, answer.text[:500]
    (item,) = answer.json()["items"]
    assert item["status"] == "ok", item

    served = {}
    for site in (b, c, a):
        response = owner.get(site.url(item["url"]))
        assert response.status_code == 200, (site.base_url, response.status_code)
        assert response.headers["Content-Type"] == "image/jpeg"
        served[site.base_url] = response.content
    assert len(set(served.values())) == 1 and len(served[a.base_url]) == item["size"]
    spread = set()
    for _ in range(3):
        response = owner.get(cluster.url(item["url"]))
        assert response.status_code == 200 and response.content == served[a.base_url]
        spread.add(upstream(response))
    assert len(spread) == 3, spread

    # The object is in the shared bucket; no host keeps a copy in its folders.
    s3 = cluster.s3
    objects = s3.keys(cluster.bucket)
    assert any(
        s3.client().get_object(Bucket=cluster.bucket, Key=k)["Body"].read() == served[a.base_url]
        for k in objects
    )
    for host in cluster.hosts:
        # Its own instance folder is in use (S3 mode's temp folder), and holds no file.
        assert os.path.isdir(os.path.join(host.root, "instance", "uploads-tmp")), host.root
        assert cluster.host_files(host) == [], host.root

    other = log_in(c, "sunqi")
    for site in (a, b, c, cluster, cluster, cluster):
        refused = other.get(site.url(item["url"]), allow_redirects=False)
        assert refused.status_code == 404, (site.base_url, refused.status_code)
        assert refused.content != served[a.base_url]


# -- the double-callback claim is shared ---------------------------------------------------


def test_a_callback_delivered_to_every_host_exchanges_its_code_once(cluster, emu):
    # WeChat may deliver the callback twice; behind a balancer each copy can land on
    # another host. One code exchange, and every copy ends logged in as the same person.
    a, b, c = cluster.hosts
    start = phone()
    callback = callback_url(
        emu, start, a, user="zhangsan", next="/me", scope=protocol.SCOPE_USERINFO
    )
    cookie = start.cookies["wxsite_session"]
    emu.reset_counters()
    path = callback[len(a.base_url) :]
    answers = in_parallel(
        [lambda s=s: phone(cookie).get(s.url(path), allow_redirects=False) for s in (a, b, c)]
    )
    for answer in answers:
        assert not isinstance(answer, Exception), answer
        assert answer.status_code == 302 and answer.headers["Location"].endswith("/me"), (
            answer.status_code,
            answer.text[:300],
        )
        assert is_logged_in(phone(answer.cookies["wxsite_session"]), c)
    assert emu.count(protocol.SNS_ACCESS_TOKEN) == 1


# -- referral visits are counted once per person, whichever host they land on --------------


def test_referral_visits_count_once_per_person_across_hosts(cluster, emu):
    a, b, c = cluster.hosts
    sharer = log_in(a, "zhouba")
    code = re.search(r"[?&]ref=([A-Za-z0-9]{8,32})", sharer.get(b.url("/share")).text).group(1)
    visits = [("lisi", a), ("wangwu", b), ("sunqi", c), ("lisi", c), ("wangwu", cluster)]
    for user, site in visits:  # a fresh login each time: no session remembers the code
        landed = log_in(site, user).get(site.url(f"/?ref={code}"), allow_redirects=False)
        assert landed.status_code == 200, (user, site.base_url, landed.status_code)
    for site in (a, b, c):
        page = sharer.get(site.url("/me")).text
        assert re.search(r'id="share-visits">\s*3 人', page), (site.base_url, page[-2000:])


# -- 4. the bind throttle counts across hosts ---------------------------------------------


def test_bind_throttle_counts_every_host(cluster, emu):
    a, b, c = cluster.hosts
    a.flask("account", "create", "alice", input=PASSWORD + "\n")
    person = log_in(c, "zhaoliu", scope=protocol.SCOPE_BASE)
    cookie = person.cookies["wxsite_session"]
    token = csrf_token(person.get(a.url("/auth/bind")).text)
    targets = sites(cluster)
    turn = iter(range(1000))

    def bind(username, password):
        site = targets[next(turn) % len(targets)]
        return phone(cookie).post(
            site.url("/auth/bind"),
            data={"csrf_token": token, "username": username, "password": password},
            allow_redirects=False,
        )

    # The account's limit, spread over A, B, C and the balancer; then even the right
    # password is refused, on whichever host it lands.
    for _ in range(MAX_ACCOUNT_FAILURES):
        wrong = bind("alice", "wrong password")
        assert wrong.status_code == 400 and "用户名或密码错误" in wrong.text
    assert bind("alice", PASSWORD).status_code == 429
    # The person's own limit (other usernames), spread the same way.
    for i in range(MAX_CLIENT_FAILURES - MAX_ACCOUNT_FAILURES):
        assert bind(f"nobody{i}", "wrong password").status_code == 400
    for site in sites(cluster):
        refused = phone(cookie).post(
            site.url("/auth/bind"),
            data={"csrf_token": token, "username": "someone", "password": "guess"},
            allow_redirects=False,
        )
        assert refused.status_code == 429, site.base_url
    assert "alice\t0 WeChat" in a.flask("account", "list").stdout


# -- 6. one person, many requests, every host ---------------------------------------------


def test_sixty_requests_of_one_person_through_the_balancer_all_succeed(cluster, emu):
    cookie = log_in(cluster, "zhangsan").cookies["wxsite_session"]
    paths = ["/share", "/me", "/upload", "/"]
    plan = [paths[i % len(paths)] for i in range(60)]

    def run(batch):
        session = phone(cookie)  # one phone, its requests one after another
        return [(p, session.get(cluster.url(p), allow_redirects=False)) for p in batch]

    # Six tabs of the same person at once, ten requests each.
    results = [
        r for tab in in_parallel([lambda i=i: run(plan[i::6]) for i in range(6)]) for r in tab
    ]
    assert len(results) == 60
    for path, response in results:
        assert response.status_code == 200, (path, response.status_code, response.text[:300])
        if path == "/share":
            check_signed(cluster, emu, response, cluster.url(path))
    assert {upstream(r) for _, r in results} == {f"127.0.0.1:{h.port}" for h in cluster.hosts}


# -- one host outside the IP whitelist ----------------------------------------------------


def test_follow_to_log_in_crosses_hosts(cluster, emu):
    """The desktop's page on A, WeChat's push of the scan to B, the phone's confirmation on
    C: every step reads and writes the shared database, and a push redelivered to another
    host is applied once."""
    a, b, c = cluster.hosts
    emu.push_config(b.url("/wechat/push"), PUSH_TOKEN, None, "plaintext", retry_delay=0.05)
    try:
        emu.set_follows("zhangsan", [APPID])
        desktop = requests.Session()
        desktop.headers["User-Agent"] = DESKTOP_UA
        page = desktop.get(a.url("/auth/scan"), params={"next": "/me"})
        assert page.status_code == 200 and "scan-follow-qr" in page.text
        status = re.search(r'data-status-url="([^"]+)"', page.text).group(1)
        delivery = emu.scan(emu.qrcodes()[-1]["ticket"], "zhangsan")["delivery"]
        assert delivery["accepted"] and "点此确认在电脑上登录" in delivery["reply"], delivery
        link = urlsplit(re.search(r'href="([^"]+)"', delivery["reply"]).group(1)).path
        assert link == status.rsplit("/", 1)[0]
        assert desktop.get(c.url(status)).json() == {"state": "scanned"}

        emu.push_config(c.url("/wechat/push"), PUSH_TOKEN, None, "plaintext", retry_delay=0.05)
        again = emu.push_replay(delivery["id"])
        assert again["accepted"] and again["answer"] == "success" and not again["reply"]

        person = log_in(c, "zhangsan", scope=protocol.SCOPE_BASE)
        asked = person.get(c.url(link))
        assert "在电脑上登录" in asked.text, asked.text[:300]
        done = person.post(c.url(link + "/confirm"), data={"csrf_token": csrf_token(asked.text)})
        assert done.status_code == 200 and "已确认登录" in done.text
        assert desktop.get(b.url(status)).json() == {"state": "done", "next": "/me"}
        assert openid(emu, "zhangsan") in desktop.get(a.url("/me")).text
    finally:
        emu.push_config(None, PUSH_TOKEN)


def test_a_host_outside_the_ip_whitelist_does_not_stop_the_others(cluster, emu):
    # C is the refused host: it keeps the refusal to itself for a minute (ERROR_BACKOFF), and
    # the kill test below needs A to ask WeChat.
    a, b, c = cluster.hosts
    cookie = log_in(c, "sunqi").cookies["wxsite_session"]
    make_cold(cluster)
    emu.reset_counters()
    # WeChat refuses C's address (its outbound IP is not in the MP console's whitelist).
    emu.fault(protocol.STABLE_TOKEN, errcode=protocol.IP_NOT_WHITELISTED)
    assert phone(cookie).get(c.url("/share"), allow_redirects=False).status_code != 200
    # B's address is whitelisted: B may ask WeChat itself, and gets its page.
    on_b = phone(cookie).get(b.url("/share"), allow_redirects=False)
    assert on_b.status_code == 200, (on_b.status_code, emu.counters()[protocol.STABLE_TOKEN])
    check_signed(cluster, emu, on_b, b.url("/share"))
    assert emu.count(protocol.STABLE_TOKEN) == 2  # C's refused call, then B's


# -- 5. a host dies holding the lease (last: host A stays dead) ---------------------------


def test_kill_9_of_a_host_holding_the_lease_leaves_the_others_serving(cluster, emu):
    a, b, c = cluster.hosts
    cookie = log_in(b, "lisi").cookies["wxsite_session"]
    make_cold(cluster)
    emu.reset_counters()
    # A's token fetch hangs (WeChat never answers in time); A dies while it waits.
    emu.fault(protocol.STABLE_TOKEN, stall=60)
    redis = cluster.redis.client()
    lease_key = f"wxsite:cred:{APPID}:access_token:lease"

    def on_a():
        try:
            phone(cookie).get(a.url("/share"), timeout=70)
        except requests.RequestException:
            pass  # the host died under it

    stalled = threading.Thread(target=on_a, daemon=True)
    stalled.start()
    give_up = time.monotonic() + 10
    while emu.count(protocol.STABLE_TOKEN) < 1:
        assert time.monotonic() < give_up, "host A never asked for a token"
        time.sleep(0.02)
    assert 0 < redis.pttl(lease_key) <= LEASE * 1000  # A holds a lease that will expire
    a.kill()
    stalled.join(5)

    # B, C and the balancer (which skips the dead host) serve again once the dead
    # holder's lease is over; until then their requests wait or answer 503, and never
    # fetch alongside. Three phones on each at once, each asking until it gets the page.
    give_up = time.monotonic() + LEASE + 20  # a bound for a broken build, not a timing

    def until_served(site):
        statuses = []
        while time.monotonic() < give_up:
            response = phone(cookie).get(site.url("/share"), allow_redirects=False, timeout=30)
            statuses.append(response.status_code)
            if response.status_code == 200:
                return site, response, statuses
        return site, None, statuses

    outcomes = in_parallel([lambda s=s: until_served(s) for s in (b, c, cluster) * 3])
    for outcome in outcomes:
        assert not isinstance(outcome, Exception), outcome
        site, response, statuses = outcome
        assert response is not None, (site.base_url, statuses, emu.counters())
        assert set(statuses[:-1]) <= {503}, (site.base_url, statuses)
    counts = emu.counters()
    # The stalled call plus exactly one after the lease: no stampede, no second ticket.
    assert counts[protocol.STABLE_TOKEN] == 2, (counts, [o[2] for o in outcomes])
    assert counts[protocol.TICKET] == 1, counts
    for site, response, _ in outcomes:
        check_signed(cluster, emu, response, site.url("/share"))


# -- 7. a job outlives the host that queued it (after 5: A is dead, C queues and dies) ----


@pytest.mark.skipif(not shutil.which("ffmpeg"), reason="needs ffmpeg (make test installs it)")
def test_a_job_queued_on_a_host_that_dies_runs_on_another(cluster, emu):
    _, b, c = cluster.hosts
    person = log_in(c, "zhaoliu")
    amr = b"#!AMR\n" + (b"\x3c" + b"\x00" * 31) * 100  # 2 s of silence
    server_id = emu.upload_media(amr, "audio/amr", kind="voice")
    token = csrf_token(person.get(c.url("/voice")).text)
    answer = person.post(
        c.url("/voice"), json={"server_id": server_id}, headers={"X-CSRFToken": token}
    )
    assert answer.status_code == 200, answer.text[:500]
    item = answer.json()["item"]
    assert item["processing"] is True  # queued on C, in the shared Redis queue
    c.kill()  # C is gone before any consumer saw the job (web hosts run none here)
    assert "处理中" in person.get(b.url("/voice")).text

    worker = Process(
        [os.path.join(VENV_BIN, "flask"), "--app", "wsgi", "wx", "worker", "--workers", "1"],
        env=b.env,
        cwd=b.root,
        log_path=os.path.join(b.root, "worker.log"),
    )
    try:
        give_up = time.monotonic() + 60  # a bound for a broken build, not a timing
        while time.monotonic() < give_up and "处理中" in person.get(b.url("/voice")).text:
            time.sleep(0.2)
        page = person.get(b.url("/voice")).text
        assert "处理中" not in page and "<audio controls" in page, worker.log()[-2000:]
    finally:
        worker.stop()
    mp3 = person.get(b.url(f"/uploads/{item['id']}/play"))
    assert mp3.status_code == 200 and mp3.headers["Content-Type"] == "audio/mpeg"
    jobs = b.flask("wx", "jobs").stdout
    assert re.search(rf"done\s+1/\d+\s+voice\.transcode:{item['id']}\b", jobs), jobs
