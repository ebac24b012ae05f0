"""Housekeeping (issue 11 items 9, 10): half-written and unowned files, expired rows."""

import os
import time

import pytest
import requests

from support import WECHAT_UA, site_config
from wxsite import create_app, jobs, maintenance, store
from wxsite.auth.users import LOGIN_MAX_AGE


def age(path, seconds):
    then = time.time() - seconds
    os.utime(path, (then, then))


@pytest.fixture
def uploads(app):
    # The sweep is a periodic job; a test's app runs no job threads, so nothing races this.
    folder = app.config["WXSITE_UPLOADS"]
    os.makedirs(os.path.join(folder, "images"), exist_ok=True)
    return folder


def write(uploads, relative, old=True):
    path = os.path.join(uploads, relative)
    with open(path, "wb") as f:
        f.write(b"x")
    if old:
        age(path, maintenance.GRACE + 60)
    return path


def test_sweep_removes_what_a_killed_worker_left(app, uploads):
    with app.app_context():
        db = store.get_db()
        person = db.scalar("INSERT INTO people (created_at) VALUES (0) RETURNING id")
        kept = write(uploads, "images/kept.jpg")
        store.add_upload(db, person, "image", "m", "images/kept.jpg", "h", 1, "image/jpeg")
        part = write(uploads, "images/.part-abc")
        clean = write(uploads, "images/.clean-abc.jpg")
        mp3 = write(uploads, "images/x.part.mp3")
        unowned = write(uploads, "images/renamed-but-no-row.jpg")  # killed before the row
        fresh = write(uploads, "images/.part-fresh", old=False)  # a download in progress
        done = maintenance.sweep(db, uploads, LOGIN_MAX_AGE)
    assert done["temporary_files"] == 3 and done["unowned_files"] == 1
    assert os.path.exists(kept) and os.path.exists(fresh)
    assert not any(os.path.exists(p) for p in (part, clean, mp3, unowned))


def test_deleted_upload_files_are_removed_even_if_the_request_died(app, uploads):
    with app.app_context():
        db = store.get_db()
        person = db.scalar("INSERT INTO people (created_at) VALUES (0) RETURNING id")
        path = write(uploads, "images/gone.jpg", old=False)
        row, _ = store.add_upload(db, person, "image", "m", "images/gone.jpg", "h", 1, "image/jpeg")
        store.delete_upload(db, row["id"], person)  # ... and the worker dies before unlinking
        assert os.path.exists(path)
        maintenance.sweep(db, uploads, LOGIN_MAX_AGE)
        assert not os.path.exists(path)
        assert store.orphan_files(db) == []


def test_expired_rows_are_purged(app):
    now = time.time()
    with app.app_context():
        db = store.get_db()
        for sql in (
            "INSERT INTO auth_states (key, value, expires_at) VALUES ('old', '{}', 0)",
            "INSERT INTO auth_states (key, value, expires_at) VALUES ('new', '{}', :now)",
            "INSERT INTO deliveries VALUES ('n-old', 'T', 0)",
            "INSERT INTO deliveries VALUES ('n-new', 'T', :now)",
            "INSERT INTO login_failures VALUES ('k-old', 3, 0)",
            "INSERT INTO jobs (key, name, args, state, max_attempts, created_at, updated_at) "
            "VALUES ('j-old', 'x', '{}', 'done', 1, 0, 0)",
            "INSERT INTO jobs (key, name, args, state, max_attempts, created_at, updated_at) "
            "VALUES ('j-failed', 'x', '{}', 'failed', 1, 0, 0)",
            "INSERT INTO jobs (key, name, args, state, max_attempts, created_at, updated_at) "
            "VALUES ('j-new', 'x', '{}', 'done', 1, :now, :now)",
        ):
            db.execute(sql, {"now": now} if ":now" in sql else None)
        person = db.scalar("INSERT INTO people (created_at) VALUES (0) RETURNING id")
        user = db.scalar(
            "INSERT INTO wechat_users (appid, openid, person_id, created_at) "
            "VALUES ('a', 'o', :person, 0) RETURNING id",
            {"person": person},
        )
        for login_id, created, revoked in (
            ("l-old", 0, None),
            ("l-rev", now, 1),
            ("l-live", now, None),
        ):
            db.execute(
                "INSERT INTO logins (id, wechat_user_id, created_at, revoked_at) "
                "VALUES (:id, :user, :created, :revoked)",
                {"id": login_id, "user": user, "created": created, "revoked": revoked},
            )
        maintenance.sweep(db, app.config["WXSITE_UPLOADS"], LOGIN_MAX_AGE)

        def keys(table, column):
            return sorted(r[column] for r in db.query(f"SELECT {column} FROM {table}"))

        assert keys("auth_states", "key") == ["new"]
        assert keys("deliveries", "key") == ["n-new"]
        assert keys("logins", "id") == ["l-live"]
        assert "k-old" not in keys("login_failures", "key")
        # A done job is forgotten after a week; a failed one stays until it is run again.
        assert keys("jobs", "key") == ["j-failed", "j-new"]


def test_one_process_sweeps_per_interval(app, tmp_path, emu):
    other = create_app(site_config(tmp_path, emu))  # another process of the same site
    with app.app_context():
        assert maintenance.sweep_job(app) == "nothing to remove"
    with other.app_context():
        assert maintenance.sweep_job(other) == "another process had the turn"
        assert maintenance.sweep_if_due(other) is None
    with app.app_context():
        later = time.time() + maintenance.INTERVAL + 1
        assert maintenance.sweep_job(app, now=later) == "nothing to remove"


def test_the_sweep_runs_as_a_periodic_job_from_the_consumers_start(tmp_path, emu):
    app = create_app(site_config(tmp_path, emu, WXSITE_JOBS_CONSUMER="thread"))
    try:
        deadline = time.monotonic() + 30
        while True:
            with app.app_context():
                row = store.get_job(store.get_db(), "maintenance.sweep")
            # Not the row ensure_periodic makes before the first run (done, 0 attempts).
            if row and row["state"] == "done" and row["attempts"]:
                break
            assert time.monotonic() < deadline, row
            time.sleep(0.05)
        assert row["result"] == "nothing to remove" and row["attempts"] == 1
    finally:
        assert jobs.get(app).stop_consumer()
    assert not jobs.get(app).running.alive


def test_cookieless_login_starts_are_bounded_per_client(app, live, emu):
    limit = app.config["WXSITE_LOGIN_STARTS_PER_IP"]
    answers = [
        requests.get(
            live.url("/auth/login"), headers={"User-Agent": WECHAT_UA}, allow_redirects=False
        )
        for _ in range(limit + 5)
    ]
    assert [a.status_code for a in answers].count(302) == limit
    assert answers[-1].status_code == 429 and "操作太频繁" in answers[-1].text
    with app.app_context():
        assert store.get_db().scalar("SELECT COUNT(*) FROM auth_states") == limit
