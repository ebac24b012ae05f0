"""What the per-process trims of a page's render keep as it was (wxsite.extensions, app).

Paths built once per process still follow the script root a trusted proxy sets, the
session still says ``Vary: Cookie`` and sends the cookie when it changed, CSRF still
refuses an unsafe request without a token, and templates still see the same names.
"""

import re

import pytest
from flask import render_template_string, session
from support import WECHAT_UA, csrf_token, site_config, wechat_login

from wxsite import create_app


def test_paths_and_asset_urls_follow_the_script_root(tmp_path, emu):
    config = site_config(tmp_path, emu)
    config["WX_PROXY_HOPS"] = 1
    app = create_app(config)
    client = app.test_client()
    for prefix in ("", "/wx", "/other", ""):
        headers = {"User-Agent": WECHAT_UA, "X-Forwarded-Prefix": prefix} if prefix else {}
        page = client.get("/", headers=headers).get_data(as_text=True)
        report = re.search(r'data-jssdk-report="([^"]+)"', page).group(1)
        assert report == f"{prefix}/jssdk/report"
        css = re.search(r'<link rel="stylesheet" href="([^"]+)"', page).group(1)
        assert re.fullmatch(rf"{re.escape(prefix)}/static/css/site\.[0-9a-f]{{12}}\.css", css)


def test_a_script_root_is_escaped_in_the_page(tmp_path, emu):
    config = site_config(tmp_path, emu)
    config["WX_PROXY_HOPS"] = 1
    app = create_app(config)
    page = app.test_client().get("/", headers={"X-Forwarded-Prefix": "/a<b"}).get_data(True)
    assert "/a<b" not in page and 'href="/a&lt;b/static/css/site.' in page
    assert 'data-jssdk-report="/a&lt;b/jssdk/report"' in page


def test_a_read_session_says_vary_cookie_and_sends_no_cookie(logged_in, live):
    response = logged_in.get(live.url("/share"))
    assert response.status_code == 200
    assert "Cookie" in [v.strip() for v in response.headers["Vary"].split(",")]
    assert "wxsite_session" not in response.headers.get("Set-Cookie", "")


def test_vary_keeps_what_the_view_said(app):
    @app.get("/_vary")
    def vary():
        session.get("x")
        return "ok", 200, {"Vary": "Accept-Encoding"}

    response = app.test_client().get("/_vary")
    assert response.headers["Vary"] == "Accept-Encoding, Cookie"


def test_a_changed_session_is_sent_and_a_cleared_one_deleted(app):
    @app.get("/_set")
    def set_value():
        session["x"] = 1
        return "ok"

    @app.get("/_clear")
    def clear():
        session.clear()
        return "ok"

    client = app.test_client()
    set_response = client.get("/_set")
    assert "wxsite_session=" in set_response.headers["Set-Cookie"]
    assert set_response.headers["Vary"] == "Cookie"
    cleared = client.get("/_clear")
    assert "wxsite_session=;" in cleared.headers["Set-Cookie"]


def test_csrf_still_refuses_an_unsafe_request_without_its_token(logged_in, live):
    for method in ("POST", "PUT", "PATCH", "DELETE"):
        response = logged_in.request(method, live.url("/auth/logout"))
        assert response.status_code in (400, 405), method
    assert logged_in.post(live.url("/auth/logout")).status_code == 400
    assert logged_in.get(live.url("/share"), allow_redirects=False).status_code == 200
    token = csrf_token(logged_in.get(live.url("/share")).text)
    assert logged_in.post(live.url("/auth/logout"), data={"csrf_token": token}).ok
    assert logged_in.get(live.url("/share"), allow_redirects=False).status_code == 302


@pytest.mark.parametrize("path", ["/share", "/pay/shop"])
def test_blueprint_pages_see_request_g_and_current_user(app, path):
    with app.test_request_context(path):
        app.preprocess_request()
        names = render_template_string(
            "{{ request.path }} {{ g.request_id is defined }} "
            "{{ current_user.is_authenticated }} {{ site_name }}"
        )
    assert names == f"{path} True False {app.config['WXSITE_NAME']}"


def test_home_shows_the_logged_in_person_and_nobody_to_others(phone, live):
    assert '<div class="cell-foot">我的资料</div>' not in phone.get(live.url("/")).text
    wechat_login(phone, live, scope="snsapi_userinfo")
    page = phone.get(live.url("/")).text
    assert '<div class="cell-foot">我的资料</div>' in page
    assert '<img class="avatar avatar-sm" src="' in page  # the profile's headimgurl
