"""Desktop login by scanning, edge cases (issue 14 audit, gaps 5 and 6): two tabs of one
browser, a confirmed code redeemed late or twice, and the time the phone is shown."""

import time

import pytest
from test_scan import decide, desktop_browser, start

from wxsite import store
from wxsite.auth.scan import LIFETIME


@pytest.fixture
def desktop():
    return desktop_browser()


def test_two_tabs_of_one_browser_both_keep_their_code(live, logged_in, desktop):
    # A second tab (or 刷新二维码, then Back) used to replace the browser's secret, so the
    # first tab's code answered "forbidden" (属于另一个浏览器) to the browser that asked.
    first_link, first_status = start(live, desktop)
    second_link, second_status = start(live, desktop)
    assert desktop.get(first_status).json() == {"state": "pending"}
    assert desktop.get(second_status).json() == {"state": "pending"}
    decide(logged_in, first_link)
    thief = desktop_browser()
    thief.get(live.url("/"))
    assert thief.get(first_status).status_code == 403  # still another browser's code
    assert desktop.get(first_status).json() == {"state": "done", "next": "/me"}


def test_the_second_tabs_code_logs_in_too(live, logged_in, desktop):
    first_link, first_status = start(live, desktop)
    second_link, second_status = start(live, desktop)
    decide(logged_in, second_link)
    assert desktop.get(second_status).json()["state"] == "done"
    # Logged in: the first tab's code is of no further use (the login cleared the secret).
    assert desktop.get(first_status).status_code == 403


def confirmed(live, phone, desktop):
    """Ask for a code on the desktop and confirm it on the phone; return its status URL."""
    link, status = start(live, desktop)
    decide(phone, link)
    return status


def stored(app, status):
    """The ticket's row behind a status URL."""
    with app.app_context():
        return store.get_scan(store.get_db(), status.split("/")[-2])


@pytest.mark.parametrize("after, answer", [(LIFETIME - 10, "done"), (LIFETIME + 1, "expired")])
def test_a_confirmed_code_is_redeemed_only_within_its_lifetime(
    app, live, logged_in, desktop, after, answer
):
    status = confirmed(live, logged_in, desktop)
    app.config["WXSITE_CLOCK"] = lambda: time.time() + after
    assert desktop.get(status).json()["state"] == answer
    logged_in_now = desktop.get(live.url("/auth/bind"), allow_redirects=False).status_code == 200
    assert logged_in_now == (answer == "done")
    assert stored(app, status)["state"] == ("redeemed" if answer == "done" else "confirmed")


def test_a_redeemed_code_is_used_up(app, live, logged_in, desktop):
    status = confirmed(live, logged_in, desktop)
    before_login = desktop.cookies.get("wxsite_session")  # still holds the scan secret
    assert desktop.get(status).json()["state"] == "done"
    replay = desktop_browser()
    replay.cookies.set("wxsite_session", before_login)
    assert replay.get(status).json() == {"state": "redeemed"}
    assert replay.get(live.url("/auth/bind"), allow_redirects=False).status_code != 200
    assert stored(app, status)["state"] == "redeemed"


def test_the_store_redeems_a_ticket_once_and_only_in_its_window(app, live, logged_in, desktop):
    status = confirmed(live, logged_in, desktop)
    row = stored(app, status)
    ticket, key, decided = row["ticket"], row["browser_key"], row["decided_at"]
    with app.app_context():
        db = store.get_db()
        assert store.redeem_scan(db, ticket, "another browser", 120) is None
        assert store.redeem_scan(db, ticket, key, 120, now=decided + 121) is None
        assert store.redeem_scan(db, ticket, key, 120, now=decided + 119) == row["wechat_user_id"]
        assert store.redeem_scan(db, ticket, key, 120, now=decided + 119) is None


def test_the_phone_is_shown_the_desktops_time_in_china(app, live, logged_in, desktop):
    # 01:02 UTC (the last one, so the phone's login made just now is still young) is 09:02
    # in Beijing; the page used to show the server's own zone, 01:02 on a UTC host.
    now = time.time()
    asked = now - (now - (1 * 3600 + 2 * 60)) % 86400
    app.config["WXSITE_CLOCK"] = lambda: asked
    link, _ = start(live, desktop)
    page = logged_in.get(link)
    assert "Linux 上的 Chrome · 北京时间 09:02 发起" in page.text, page.text
    assert "01:02" not in page.text
