"""Background jobs on the SQLite queue, run by a real consumer inside the site's process.

Refund retries (the same out_refund_no, never a second refund), backoff then failed
(shown by ``wx jobs`` and ``wx doctor``, logged with the reason), a queue that does not
answer (no 500), and what each job does when it is run twice.
"""

import logging

from jobs_helpers import (
    emulator_refunds,
    job_in,
    job_row,
    paid_order,
    refund_row,
    wait_for,
)
from support import SECRET_KEY, site_config
from wxsite import create_app, jobs, store
from wxsite.jobs import tasks
from wxsite.pay import refunds


def refund_by_cli(app, no, number, amount=500):
    return app.test_cli_runner().invoke(
        args=["pay", "refund", no, "--amount", str(amount), "--request-id", number]
    )


def test_backoff_doubles_and_is_bounded():
    cfg = {"WXSITE_JOBS_RETRY_BASE": 10.0, "WXSITE_JOBS_RETRY_MAX": 60.0}
    assert [jobs.backoff(cfg, n) for n in range(1, 7)] == [10, 20, 40, 60, 60, 60]
    assert jobs.backoff(cfg, 10_000) == 60  # no overflow however many tries


def test_a_failed_refund_call_is_retried_by_a_job_with_the_same_number(site, front, emu, phone):
    app, live = site
    no = paid_order(phone, live, emu)
    front.refund_modes = ["fail", "fail"]  # the request's call, then the job's first try
    result = refund_by_cli(app, no, "RFjobretry0001")
    assert result.exit_code != 0 and "同一退款单号自动重试" in result.output, result.output
    assert refund_row(app, "RFjobretry0001")["status"] == "PENDING"
    key = refunds.retry_key("RFjobretry0001")
    row = wait_for(lambda: job_in(app, key, "done", "failed"), what="the refund job")
    assert (row["state"], row["attempts"]) == ("done", 2), row
    assert row["result"] == "sent again, now PROCESSING" or "SUCCESS" in row["result"]
    # Three calls to WeChat Pay, one refund number; WeChat Pay holds exactly one refund.
    assert front.refund_numbers == ["RFjobretry0001"] * 3
    assert emulator_refunds(emu) == ["RFjobretry0001"]
    assert refund_row(app, "RFjobretry0001")["status"] in ("PROCESSING", "SUCCESS")
    with app.app_context():
        assert store.get_db().scalar("SELECT COUNT(*) FROM refunds") == 1


def test_a_lost_answer_is_not_refunded_twice(site, front, emu, phone):
    app, live = site
    no = paid_order(phone, live, emu)
    front.refund_modes = ["lose"]  # WeChat Pay accepts it; its answer never arrives
    assert refund_by_cli(app, no, "RFjoblost00001", 800).exit_code != 0
    key = refunds.retry_key("RFjoblost00001")
    row = wait_for(lambda: job_in(app, key, "done", "failed"), what="the refund job")
    assert row["state"] == "done" and row["attempts"] == 1
    assert front.refund_numbers == ["RFjoblost00001"] * 2
    assert emulator_refunds(emu) == ["RFjoblost00001"]  # the retry was the same refund
    assert refund_row(app, "RFjoblost00001")["status"] in ("PROCESSING", "SUCCESS")
    with app.app_context():
        assert store.refundable(store.get_db(), no) == 2800 - 800


def test_a_job_that_keeps_failing_is_failed_shown_and_logged(site, front, emu, phone, caplog):
    app, live = site
    no = paid_order(phone, live, emu)
    caplog.set_level(logging.INFO, logger="wxsite")
    front.always = "fail"
    assert refund_by_cli(app, no, "RFjobfail00001").exit_code != 0
    key = refunds.retry_key("RFjobfail00001")
    row = wait_for(lambda: job_in(app, key, "failed"), what="the job to fail")
    assert row["attempts"] == row["max_attempts"] == 3
    assert row["last_error"].startswith("WeChat Pay did not answer (UNAVAILABLE)")
    # Retried with backoff: the request's call and three tries, all the same number.
    assert front.refund_numbers == ["RFjobfail00001"] * 4
    retried = [r.getMessage() for r in caplog.records if "retried in" in r.getMessage()]
    assert len(retried) == 2 and all(key in line for line in retried)
    given_up = [r for r in caplog.records if "given up" in r.getMessage()]
    assert len(given_up) == 1 and given_up[0].levelname == "ERROR"
    assert "the refund stays PENDING under the same out_refund_no" in given_up[0].getMessage()
    assert refund_row(app, "RFjobfail00001")["status"] == "PENDING"  # never a new number
    assert emulator_refunds(emu) == []

    listing = app.test_cli_runner().invoke(args=["wx", "jobs"])
    assert listing.exit_code == 0, listing.output
    line = next(line for line in listing.output.splitlines() if key in line)
    assert line.startswith("failed") and "3/3" in line and "WeChat Pay did not answer" in line
    assert "failed 1" in listing.output
    only = app.test_cli_runner().invoke(args=["wx", "jobs", "--state", "done"])
    assert key not in only.output
    doctor = app.test_cli_runner().invoke(args=["wx", "doctor"])
    assert doctor.exit_code == 1
    assert any(
        line.startswith("FAIL  jobs") and key in line for line in doctor.output.splitlines()
    ), doctor.output
    for text in (caplog.text, listing.output, doctor.output):
        assert SECRET_KEY not in text and "access_token=" not in text

    # Mended: run it again by hand; the same number goes through, once.
    front.always = None
    again = app.test_cli_runner().invoke(args=["wx", "jobs", "retry", key])
    assert again.exit_code == 0, again.output
    row = wait_for(lambda: job_in(app, key, "done", "failed"), what="the retried job")
    assert row["state"] == "done" and row["attempts"] == 1
    assert emulator_refunds(emu) == ["RFjobfail00001"]
    assert app.test_cli_runner().invoke(args=["wx", "doctor"]).output.count("FAIL  jobs") == 0


def test_a_queue_that_does_not_answer_never_fails_a_request(tmp_path, emu, phone, caplog):
    import os

    from support import LiveServer, WeChat, amr_bytes

    queue_file = str(tmp_path / "queue" / "jobs.sqlite3")
    app = create_app(site_config(tmp_path, emu, WXSITE_JOBS_FILE=queue_file))
    live = LiveServer(app)
    try:
        wechat = WeChat(live, phone)
        wechat.login()
        # The queue's file goes away (a full or unmounted disk): nothing can open it.
        os.unlink(queue_file)
        os.mkdir(queue_file)
        post = wechat.post_json
        media_id = emu.upload_media(amr_bytes(1), "audio/amr", kind="voice")
        caplog.set_level(logging.WARNING, logger="wxsite")
        response = post("/voice", {"server_id": media_id})
        assert response.status_code == 200, response.text
        item = response.json()["item"]
        # Its row waits, queued, for jobs.recover to send it once the queue is back.
        row = job_row(app, f"voice.transcode:{item['id']}")
        assert row["state"] == "queued" and row["attempts"] == 0
        assert any("did not take it" in r.getMessage() for r in caplog.records)
        assert "处理中" in phone.get(live.url("/voice")).text
        doctor = app.test_cli_runner().invoke(args=["wx", "doctor"])
        assert "FAIL  jobs" in doctor.output and "does not answer" in doctor.output
    finally:
        live.shutdown()


def test_every_job_is_registered_with_the_queue(app):
    names = set(jobs.get(app).tasks)
    assert (
        names
        == set(tasks.JOBS)
        == {
            "voice.transcode",
            "refund.retry",
            "pay.reconcile",
            "maintenance.sweep",
            "jobs.recover",
        }
    )
    periodic = {name for name, job in tasks.JOBS.items() if job.every is not None}
    assert periodic == {"pay.reconcile", "maintenance.sweep", "jobs.recover"}


def test_a_job_run_twice_does_its_work_once(app):
    with app.app_context():
        db = store.get_db()
        assert store.queue_job(
            db, "refund.retry:RFnone", "refund.retry", {"out_refund_no": "RFnone"}, 3, 0
        )
        # The same work queued again while it waits: one row, one message.
        assert not store.queue_job(db, "refund.retry:RFnone", "refund.retry", {}, 3, 0)
        first = store.start_job(db, "refund.retry:RFnone", lease_until=2e9)
        assert first["attempts"] == 1
        assert store.start_job(db, "refund.retry:RFnone", lease_until=2e9) is None  # held
        store.finish_job(db, "refund.retry:RFnone", "done", result="ok")
        assert store.start_job(db, "refund.retry:RFnone", lease_until=2e9) is None  # done
        # A lease that ran out (its worker died) lets the next run claim the job.
        store.queue_job(db, "voice.transcode:9", "voice.transcode", {"upload_id": 9}, 3, 0)
        store.start_job(db, "voice.transcode:9", lease_until=1.0, now=0.5)
        assert [r["key"] for r in store.stale_jobs(db, before=0, now=2.0)] == ["voice.transcode:9"]
        again = store.start_job(db, "voice.transcode:9", lease_until=10.0, now=2.0)
        assert again["attempts"] == 2
