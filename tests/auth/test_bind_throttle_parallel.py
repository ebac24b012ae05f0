"""The bind throttle under parallel guesses across gunicorn workers (RELIABILITY 29, 58)."""

import pytest
from functools import partial

from support import WeChat, csrf_token, in_parallel, phone_session
from stack import Gunicorn
from wxsite.auth.views import MAX_ACCOUNT_FAILURES

pytestmark = pytest.mark.slow

PASSWORD = "correct horse battery"


@pytest.fixture
def site(tmp_path, emulator_server):
    running = Gunicorn(str(tmp_path), emulator_server.base_url, workers=2, threads=8)
    running.flask("account", "create", "alice", input=PASSWORD + "\n")
    yield running
    running.stop()


class Site:
    def __init__(self, base_url):
        self.base_url = base_url

    def url(self, path):
        return self.base_url + path


def burst(live, cookie, token, passwords):
    """POST every password to /auth/bind at once, each from its own connection."""

    def attempt(session, password):
        return session.post(
            live.url("/auth/bind"),
            data={"csrf_token": token, "username": "alice", "password": password},
            headers={"Referer": live.url("/auth/bind")},
            allow_redirects=False,
        )

    sessions = [phone_session() for _ in passwords]
    for session in sessions:
        session.cookies.set("wxsite_session", cookie)
    return in_parallel([partial(attempt, s, p) for s, p in zip(sessions, passwords)])


def test_parallel_guesses_get_no_more_checks_than_the_limit(site):
    live = Site(site.base_url)
    phone = WeChat(live)
    phone.login(user="lisi")
    cookie = phone.session.cookies.get("wxsite_session")
    token = csrf_token(phone.get("/auth/bind").text)

    answers = burst(live, cookie, token, ["wrong password"] * 50)
    checked = [a for a in answers if a.status_code == 400]
    refused = [a for a in answers if a.status_code == 429]
    assert len(checked) == MAX_ACCOUNT_FAILURES, [a.status_code for a in answers]
    assert len(checked) + len(refused) == 50
    assert all("用户名或密码错误" in a.text for a in checked)

    # A second burst with the right password among the guesses binds nothing.
    answers = burst(live, cookie, token, ["wrong password"] * 19 + [PASSWORD])
    assert {a.status_code for a in answers} == {429}
    assert "alice\t0 WeChat" in site.flask("account", "list").stdout
