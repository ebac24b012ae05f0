"""Desktop login by scanning, edge cases (issue 14 audit, gaps 5 and 6): two tabs of one
browser, a confirmed code redeemed late or twice, and the time the phone is shown."""

import pytest
from test_scan import decide, desktop_browser, start


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
