"""One clock for every "now" (``wxsite.clock``): moving the app's clock moves the site."""

import ast
import pathlib
import time

import wxsite
from flask import render_template_string

from wxsite import clock, create_app, store

from support import Clock, LiveServer, site_config, wechat_login

ROOT = pathlib.Path(wxsite.__file__).parent
#: Framework-free parts that are handed a clock (the WeChat client) or keep their own
#: (the emulator, a separate app), and the clock itself.
OWN_CLOCKS = ("clock.py", "wechat", "emulator")
#: Itsdangerous signs the CSRF token with the real time; its age is checked against it.
REAL_TIME = {"extensions.py"}


def _wall_clock_reads(path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and node.attr == "time"
            and isinstance(node.value, ast.Name)
            and node.value.id == "time"
        ):
            yield node.lineno


def test_the_site_reads_the_time_only_through_its_clock():
    offenders = []
    for path in sorted(ROOT.rglob("*.py")):
        relative = path.relative_to(ROOT)
        if relative.parts[0] in OWN_CLOCKS or str(relative) in REAL_TIME:
            continue
        offenders += [f"{relative}:{line}" for line in _wall_clock_reads(path)]
    assert not offenders, f"time.time outside wxsite.clock: {offenders}"


def test_the_clock_is_the_apps_inside_an_app_context_and_the_wall_clock_outside(tmp_path, emu):
    moved = Clock()
    moved.offset = 3600
    app = create_app(site_config(tmp_path, emu, WXSITE_CLOCK=moved))
    with app.app_context():
        assert abs(clock.now() - (time.time() + 3600)) < 5
    assert abs(clock.now() - time.time()) < 5
    assert clock.source(app) is moved


def test_a_login_ends_when_the_apps_clock_passes_its_seven_days(tmp_path, emu, phone):
    # The store used to read time.time() itself: moving the app's clock left it logged in.
    moved = Clock()
    app = create_app(site_config(tmp_path, emu, WXSITE_CLOCK=moved))
    live = LiveServer(app)
    try:
        wechat_login(phone, live)
        assert phone.get(live.url("/upload"), allow_redirects=False).status_code == 200
        moved.offset = 6 * 86400
        assert phone.get(live.url("/upload"), allow_redirects=False).status_code == 200
        moved.offset = 7 * 86400 + 60
        refused = phone.get(live.url("/upload"), allow_redirects=False)
        assert refused.status_code == 302 and "/auth/login" in refused.headers["Location"]
    finally:
        live.shutdown()


def test_rows_written_in_a_request_carry_the_apps_time(tmp_path, emu):
    moved = Clock()
    moved.offset = -86400
    app = create_app(site_config(tmp_path, emu, WXSITE_CLOCK=moved))
    with app.app_context():
        db = store.get_db()
        store.create_account(db, "clocked", "not-a-real-hash", "时钟")
        row = db.one("SELECT created_at FROM accounts WHERE username = 'clocked'")
    assert abs(row["created_at"] - (time.time() - 86400)) < 5


def test_people_read_times_in_china_time_whatever_the_servers_zone(tmp_path, emu, monkeypatch):
    monkeypatch.setenv("TZ", "America/New_York")  # a server far from its readers
    time.tzset()
    try:
        app = create_app(site_config(tmp_path, emu))
        with app.test_request_context():
            shown = render_template_string("{{ 1764561600|datetime }}")
        assert shown == "2025-12-01 12:00" == clock.china_time(1764561600)  # 04:00 UTC
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()
