"""The Host header (RELIABILITY 50, 59): only the site's own hosts; others get a 400 page.

What a client puts in Host (or X-Forwarded-Host, through a trusted proxy) would otherwise
end up in the OAuth redirect_uri, the pay notify_url and the QR links the site makes.
"""

import json
import re

import pytest
import requests

from support import DESKTOP_UA, WECHAT_UA, LiveServer, WeChat, csrf_token, site_config
from wxsite import create_app, store

PUBLIC = "https://wx.example.com"


@pytest.fixture
def site(tmp_path, emu):
    return create_app(site_config(tmp_path, emu, WXSITE_PUBLIC_URL=PUBLIC))


def login_link(client, host, **headers):
    return client.get(
        "/auth/login?next=/share",
        headers={"Host": host, "User-Agent": WECHAT_UA, **headers},
    )


def rows(app, table):
    with app.app_context():
        return store.get_db().scalar(f"SELECT count(*) FROM {table}")


def test_a_foreign_host_gets_the_error_page_and_nothing_is_written(site):
    client = site.test_client()
    before = rows(site, "auth_states")
    response = login_link(client, "evil.com")
    assert response.status_code == 400
    text = response.get_data(as_text=True)
    assert "这个地址不属于本站" in text and "错误代码 400" in text and "evil.com" not in text
    assert rows(site, "auth_states") == before  # no login attempt was stored
    json_answer = client.get("/healthz", headers={"Host": "evil.com", "Accept": "application/json"})
    assert json_answer.status_code == 400 and json_answer.get_json()["error"] == "bad_host"
    # The public host works, and is what redirect_uri carries.
    response = login_link(client, "wx.example.com")
    assert response.status_code == 302 and rows(site, "auth_states") == before + 1
    assert "redirect_uri=http%3A%2F%2Fwx.example.com%2Fauth%2Fcallback" in response.location


@pytest.mark.parametrize(
    "host", ["evil.com", "wx.example.com.evil.com", "evilwx.example.com", "a b", "", "[::1]"]
)
def test_hosts_that_are_not_the_public_one_are_refused(site, host):
    assert login_link(site.test_client(), host).status_code == 400


def test_x_forwarded_host_is_checked_through_a_trusted_proxy(tmp_path, emu):
    app = create_app(site_config(tmp_path, emu, WXSITE_PUBLIC_URL=PUBLIC, WX_PROXY_HOPS=1))
    client = app.test_client()
    forged = login_link(client, "wx.example.com", **{"X-Forwarded-Host": "evil.com"})
    assert forged.status_code == 400
    good = login_link(
        client,
        "127.0.0.1:8000",
        **{"X-Forwarded-Host": "wx.example.com", "X-Forwarded-Proto": "https"},
    )
    assert good.status_code == 302 and "https%3A%2F%2Fwx.example.com%2F" in good.location
    # Without a trusted proxy the header is not read at all.
    direct = create_app(site_config(tmp_path, emu, WXSITE_PUBLIC_URL=PUBLIC)).test_client()
    ignored = login_link(direct, "wx.example.com", **{"X-Forwarded-Host": "evil.com"})
    assert ignored.status_code == 302 and "evil.com" not in ignored.location


def test_listed_hosts_and_subdomains_are_answered(tmp_path, emu):
    app = create_app(
        site_config(
            tmp_path, emu, WXSITE_PUBLIC_URL=PUBLIC, WXSITE_TRUSTED_HOSTS="10.0.0.5, .example.org"
        )
    )
    client = app.test_client()
    for host in ("10.0.0.5:8000", "example.org", "m.example.org", "wx.example.com:8443"):
        assert client.get("/healthz", headers={"Host": host}).status_code == 200, host
    for host in ("10.0.0.6", "example.org.evil.com", "evil.com"):
        assert client.get("/healthz", headers={"Host": host}).status_code == 400, host


def test_emulator_mode_answers_any_host_until_told_its_own(tmp_path, emu):
    # make run, the tests' gunicorn/nginx and tunnels with changing names work unconfigured.
    anything = create_app(site_config(tmp_path, emu)).test_client()
    assert login_link(anything, "abc.trycloudflare.com").status_code == 302
    told = create_app(site_config(tmp_path, emu, WXSITE_PUBLIC_URL="https://abc.trycloudflare.com"))
    assert login_link(told.test_client(), "xyz.trycloudflare.com").status_code == 400


def test_production_answers_only_its_public_host(tmp_path, emu):
    app = create_app(
        site_config(
            tmp_path,
            emu,
            WX_APPID="wx0123456789abcdef",
            WX_SECRET="s",
            WX_API_BASE=emu.base_url,
            WX_OPEN_BASE=emu.base_url,
            WXSITE_PUBLIC_URL=PUBLIC,
        )
    )
    client = app.test_client()
    assert login_link(client, "evil.com").status_code == 400
    assert login_link(client, "wx.example.com").status_code == 302
    # Outside WeChat: the QR code of the page, on the public host only.
    qr = client.get("/me", headers={"Host": "wx.example.com", "User-Agent": DESKTOP_UA})
    assert qr.status_code == 200 and "http://wx.example.com/me" in qr.get_data(as_text=True)
    foreign = client.get("/me", headers={"Host": "evil.com", "User-Agent": DESKTOP_UA})
    assert foreign.status_code == 400 and "evil.com" not in foreign.get_data(as_text=True)


def test_notify_url_never_carries_a_client_chosen_host(tmp_path, emu):
    # The live server's host is the public one (ports are not compared).
    app = create_app(site_config(tmp_path, emu, WXSITE_PUBLIC_URL="http://127.0.0.1"))
    live = LiveServer(app)
    try:
        phone = WeChat(live)
        assert phone.login().status_code == 200
        page = phone.get("/pay/")
        order = {"csrf_token": csrf_token(page.text), "product": "coffee"}
        calls = emu.count("/v3/pay/transactions/jsapi")
        before = rows(app, "orders")
        refused = phone.post("/pay/orders", data=order, headers={"Host": "evil.com"})
        assert refused.status_code == 400 and "这个地址不属于本站" in refused.text
        assert rows(app, "orders") == before and emu.count("/v3/pay/transactions/jsapi") == calls
        response = phone.post("/pay/orders", data=order)
        assert response.status_code == 200, response.text[:300]
        params = json.loads(re.search(r'id="pay-params">(.*?)</script>', response.text).group(1))
        answer = requests.post(emu.base_url + "/_emu/pay/confirm", json={**params, "notify": True})
        assert answer.json()["ok"]
        sent = requests.get(emu.base_url + "/_emu/pay/notifications").json()[-1]
        assert sent["url"] == live.url("/pay/notify") and sent["status"] == 204
    finally:
        live.shutdown()


@pytest.mark.slow
def test_behind_nginx_under_gunicorn(tmp_path):
    from stack import EmulatorProcess, Gunicorn, Nginx

    emulator = EmulatorProcess()
    env = {"WX_PROXY_HOPS": "1", "WXSITE_PUBLIC_URL": "http://127.0.0.1"}
    site = Gunicorn(str(tmp_path), emulator.base_url, workers=1, threads=2, env=env)
    proxy = Nginx(str(tmp_path), site.port)
    try:
        phone = {"User-Agent": WECHAT_UA}
        good = requests.get(proxy.base_url + "/auth/login", headers=phone, allow_redirects=False)
        assert good.status_code == 302
        assert f"redirect_uri=http%3A%2F%2F127.0.0.1%3A{proxy.port}%2F" in good.headers["Location"]
        # nginx overwrites a client's X-Forwarded-Host with the Host it was reached by.
        forged = requests.get(
            proxy.base_url + "/auth/login",
            headers={**phone, "X-Forwarded-Host": "evil.com"},
            allow_redirects=False,
        )
        assert forged.status_code == 302 and "evil.com" not in forged.headers["Location"]
        foreign = requests.get(proxy.base_url + "/", headers={"Host": "evil.com"})
        assert foreign.status_code == 400 and "这个地址不属于本站" in foreign.text
        # Straight to gunicorn, the one trusted hop is the client itself: still checked.
        direct = requests.get(site.base_url + "/", headers={"X-Forwarded-Host": "evil.com"})
        assert direct.status_code == 400
        assert "Traceback" not in site.log()
    finally:
        proxy.stop()
        site.stop()
        emulator.stop()
