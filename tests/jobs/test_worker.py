"""The shared queue: jobs on a real Redis, run by ``wx worker`` in a process of its own.

A job queued by one site (its consumer off, as on a host running a separate worker) is
run by the worker; a worker killed with SIGKILL in the middle of a refund leaves the job
to the next worker, and the refund is made once, with its one number.
"""

import uuid

import pytest
import redis

from jobs_helpers import (
    Worker,
    emulator_refunds,
    job_in,
    paid_order,
    refund_row,
    wait_for,
)
from support import LiveServer, WeChat, amr_bytes, site_config
from wxsite import create_app, jobs, store
from wxsite.jobs import tasks
from wxsite.pay import refunds

pytestmark = pytest.mark.slow
LEASE = 2.0


@pytest.fixture
def shared(tmp_path, emu, front, redis_url, phone):
    """``(app, live, worker_env)``: a site that only queues (WXSITE_JOBS_CONSUMER=off) on
    Redis, and the settings a worker process of the same site runs with."""
    queue = f"t{uuid.uuid4().hex[:10]}"
    redis.Redis.from_url(redis_url).flushdb()
    settings = {
        "WXSITE_REDIS_URL": redis_url,
        "WXSITE_JOBS_QUEUE": queue,
        "WXSITE_JOBS_CONSUMER": "off",
        "WXSITE_JOBS_LEASE": str(LEASE),
        "WXSITE_JOBS_RETRY_BASE": "0.2",
        "WXPAY_API_BASE": front.base_url,
    }
    config = site_config(tmp_path, emu, **settings)
    app = create_app(config)
    live = LiveServer(app)
    WeChat(live, phone).login()
    env = {
        **settings,
        "WXSITE_DATABASE": config["WXSITE_DATABASE"],
        "WXSITE_UPLOADS": config["WXSITE_UPLOADS"],
        "WXSITE_EMULATOR_URL": emu.base_url,
        "WXSITE_LOG_LEVEL": "INFO",
    }
    yield app, live, env
    live.shutdown()


def test_a_job_queued_by_one_site_is_run_by_a_worker_process(shared, phone, emu, tmp_path):
    app, live, env = shared
    assert jobs.get(app).describe().startswith("redis redis://127.0.0.1:")
    post = WeChat(live, phone).post_json
    item = post("/voice", {"server_id": emu.upload_media(amr_bytes(1), "audio/amr", "voice")})
    item = item.json()["item"]
    key = f"voice.transcode:{item['id']}"
    assert job_in(app, key, "queued") and jobs.get(app).pending() == 1  # on Redis, waiting
    assert "处理中" in phone.get(live.url("/voice")).text
    worker = Worker(env, str(tmp_path / "worker.log"))
    try:
        row = wait_for(lambda: job_in(app, key, "done", "failed"), what="the worker")
        assert row["state"] == "done" and row["attempts"] == 1, worker.output()
    finally:
        assert worker.stop() == 0, worker.output()
    with app.app_context():
        assert store.upload_row(store.get_db(), item["id"])["playable_path"]
    page = phone.get(live.url("/voice")).text
    assert "处理中" not in page and "<audio controls" in page
    assert jobs.get(app).pending() == 0
    listing = app.test_cli_runner().invoke(args=["wx", "jobs"])
    assert "queue: redis redis://127.0.0.1:" in listing.output and key in listing.output


def test_a_worker_killed_mid_refund_leaves_it_to_the_next_one(shared, front, phone, emu, tmp_path):
    app, live, env = shared
    no = paid_order(phone, live, emu)
    number = "RFjobkill00001"
    with app.app_context():
        store.start_refund(store.get_db(), number, no, 600)  # reserved, not yet sent
    key = refunds.retry_key(number)
    jobs.get(app).enqueue("refund.retry", {"out_refund_no": number}, key)
    front.refund_modes = ["stall"]  # WeChat Pay takes the refund; its answer is slow
    first = Worker(env, str(tmp_path / "worker-1.log"))
    try:
        wait_for(lambda: front.refund_numbers, what="the first worker's call")
        assert job_in(app, key, "running")
        first.kill()  # SIGKILL in the middle of the call: no cleanup of any kind
    finally:
        first.stop()
    # The refund is accepted at WeChat Pay but unknown here; its job is held by a dead run.
    wait_for(lambda: emulator_refunds(emu), what="WeChat Pay to take the refund")
    assert refund_row(app, number)["status"] == "PENDING"
    assert job_in(app, key, "running")
    # Once the lease is over, jobs.recover (any host's, every minute) puts the job back.
    wait_for(
        lambda: store_recovers(app, key),
        timeout=LEASE * 10,
        what="the dead run's lease to end",
    )
    second = Worker(env, str(tmp_path / "worker-2.log"))
    try:
        row = wait_for(lambda: job_in(app, key, "done", "failed"), what="the second worker")
        assert row["state"] == "done" and row["attempts"] == 2, second.output()
    finally:
        second.stop()
    # Sent twice with the one number; refunded once.
    assert front.refund_numbers == [number, number]
    assert emulator_refunds(emu) == [number]
    assert refund_row(app, number)["status"] in ("PROCESSING", "SUCCESS")
    with app.app_context():
        assert store.refundable(store.get_db(), no) == 2800 - 600


def store_recovers(app, key):
    """Run jobs.recover once (as the periodic job does); True once it has put ``key`` back."""
    with app.app_context():
        db = store.get_db()
        db.execute("DELETE FROM login_failures WHERE key = 'jobs:recover'")  # its turn now
        jobs.get(app).run(tasks.JOBS["jobs.recover"], "jobs.recover")
        row = store.get_job(db, "jobs.recover")
    # The killed worker may have been running jobs.recover itself (its periodic jobs): then
    # that run holds it, without a result, until its own lease ends too.
    result = row["result"] or ""
    return " put back: " in result and key in result
