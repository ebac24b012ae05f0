"""Site-wide behaviour: home, health, MP verification file, headers, request logs."""

import pathlib
import re

import pytest

from support import site_config
from wxsite import create_app

TEMPLATES = pathlib.Path(__file__).parent.parent / "templates"


def test_home_works_logged_out(client):
    response = client.get("/")
    assert response.status_code == 200
    assert "欢迎" in response.get_data(as_text=True)


def test_healthz_reports_without_calling_wechat(client, emu):
    body = client.get("/healthz").get_json()
    assert body["database"] == "ok" and body["mode"] == "emulator"
    assert body["credentials"]["access_token"] == {"cached": False, "expires_in": 0}
    assert emu.counters() == {} or sum(emu.counters().values()) == 0


def test_healthz_shows_credential_status_never_values(app, client, emu):
    with app.app_context():
        from wxsite import wx

        token = wx.client().access_token()
    text = client.get("/healthz").get_data(as_text=True)
    assert token not in text
    assert client.get("/healthz").get_json()["credentials"]["access_token"]["cached"] is True


def test_mp_verify_file(tmp_path, emu):
    app = create_app(site_config(tmp_path, emu, WX_MP_VERIFY="AbC123xyz"))
    client = app.test_client()
    response = client.get("/MP_verify_AbC123xyz.txt")
    assert response.status_code == 200 and response.get_data(as_text=True) == "AbC123xyz"
    assert client.get("/MP_verify_other.txt").status_code == 404


def test_mp_verify_absent_when_unset(client):
    assert client.get("/MP_verify_anything.txt").status_code == 404


def test_security_headers(client):
    response = client.get("/")
    csp = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "'unsafe-inline'" not in csp
    assert "frame-ancestors 'none'" in csp and "base-uri 'none'" in csp
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "same-origin"
    assert response.headers["Cache-Control"] == "no-store"
    assert "Strict-Transport-Security" not in response.headers


def test_hsts_only_over_https(client):
    response = client.get("/", base_url="https://wx.example.test")
    assert response.headers["Strict-Transport-Security"].startswith("max-age=")


def test_production_csp_allows_only_wechat_hosts(tmp_path, emu):
    app = create_app(
        site_config(
            tmp_path, emu, WX_APPID="wx0123456789abcdef", WX_SECRET="s", WX_API_BASE=emu.base_url
        )
    )
    csp = app.test_client().get("/").headers["Content-Security-Policy"]
    assert "https://res.wx.qq.com" in csp and "https://thirdwx.qlogo.cn" in csp
    assert "connect-src 'self';" in csp


def test_no_inline_scripts_in_templates():
    for path in TEMPLATES.rglob("*.html"):
        for tag in re.findall(r"<script\b[^>]*>", path.read_text()):
            # Data and open-tag templates (WeChat renders them) are never run as script.
            inert = 'type="application/json"' in tag or 'type="text/wxtag-template"' in tag
            assert "src=" in tag or inert, f"{path.name}: {tag}"
    assert not list(TEMPLATES.rglob("*.html")) == []


def test_request_log_line_has_id_and_no_query(client, caplog):
    caplog.set_level("INFO", logger="wxsite")
    response = client.get("/?code=SECRETCODE&state=abc")
    lines = [r.getMessage() for r in caplog.records if r.name == "wxsite.request"]
    assert lines == ["GET / 200 " + lines[0].split(" ")[3] + " user=-"]
    assert "SECRETCODE" not in caplog.text
    assert re.fullmatch(r"[0-9a-f]{12}", response.headers["X-Request-Id"])


@pytest.mark.parametrize("path,status", [("/no-such-page", 404), ("/healthz", 405)])
def test_error_pages_are_friendly(client, path, status):
    response = client.post(path) if status == 405 else client.get(path)
    assert response.status_code == status
    text = response.get_data(as_text=True)
    assert "Traceback" not in text and "返回首页" in text


def test_json_errors_for_json_clients(client):
    response = client.get("/nope", headers={"Accept": "application/json"})
    assert response.status_code == 404 and response.get_json()["error"]


def test_unexpected_exception_is_a_clean_500(app, caplog):
    @app.get("/boom")
    def boom():
        raise RuntimeError("secret detail")

    response = app.test_client().get("/boom")
    assert response.status_code == 500
    text = response.get_data(as_text=True)
    assert "secret detail" not in text and "服务器出错了" in text


@pytest.mark.sqlite_only
def test_database_locked_is_a_503(app, client):
    from wxsite import store

    blocker = store.connect(app.config["WXSITE_DATABASE"])
    blocker.execute("BEGIN EXCLUSIVE")
    try:

        @app.get("/write")
        def write():
            db = store.get_db()
            db.execute("PRAGMA busy_timeout = 100")
            with store.transaction(db):
                pass
            return "ok"

        response = app.test_client().get("/write")
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert response.status_code == 503
    assert "服务繁忙" in response.get_data(as_text=True)


def test_scripts_take_their_endpoints_from_the_page():
    # url_for puts them in data-* attributes, prefix (X-Forwarded-Prefix) included.
    import pathlib
    import re

    scripts = pathlib.Path(__file__).parent.parent / "static" / "js"
    for script in scripts.glob("*.js"):
        paths = re.findall(
            r"""["'](/(?:upload|voice|jssdk|uploads|pay|auth)\b[^"']*)["']""", script.read_text()
        )
        assert paths == [], (script.name, paths)


def test_home_lists_the_entries_the_blueprints_declare_in_their_order(app, client):
    from wxsite.menu import home_entries

    endpoints = [endpoint for endpoint, _, _ in home_entries(app)]
    assert endpoints == [
        "auth.me",
        "account.page",
        "jssdk.share",
        "media.upload",
        "media.voice",
        "pay.shop",
        "pay.orders",
    ]
    page = client.get("/").get_data(as_text=True)
    shown = re.findall(r'<div class="cell-body">([^<]+)</div>', page)
    assert shown == [label for _, label, _ in home_entries(app)]
