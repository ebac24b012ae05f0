"""Helpers for the three-host tests: phones, logins, signed configs, parallel bursts."""

import hashlib
import json
import re
import time

import requests

from support import WECHAT_UA, wechat_login
from wxsite.wechat import credentials, protocol

#: One WeChat call's budget on the hosts: the credential lease is this + LEASE_MARGIN, so
#: a short one keeps the kill -9 test's wait short; the emulator answers on loopback.
DEADLINE = 3.0
LEASE = DEADLINE + credentials.LEASE_MARGIN
APPID = protocol.EMULATOR_APPID
CRED_KEYS = "wxsite:cred:*"
PUSH_TOKEN = "threehostspushtoken"


def phone(cookie=None):
    """A requests session that looks like WeChat's browser, optionally with a login cookie."""
    session = requests.Session()
    session.headers["User-Agent"] = WECHAT_UA
    if cookie:
        session.cookies.set("wxsite_session", cookie)
    return session


def log_in(site, user, scope=protocol.SCOPE_USERINFO):
    """Log a new phone in as ``user`` through ``site`` (a host or the balancer); return it."""
    session = phone()
    response = wechat_login(session, site, user=user, scope=scope)
    assert response.status_code == 200 and response.url.startswith(site.base_url), response.url
    assert session.cookies.get("wxsite_session")
    return session


def wx_config(html):
    match = re.search(r'<script type="application/json" id="wx-config">(.*?)</script>', html, re.S)
    assert match, "no wx-config in the page"
    return json.loads(match.group(1))


def signature(ticket, config, url):
    raw = (
        f"jsapi_ticket={ticket}&noncestr={config['nonceStr']}"
        f"&timestamp={config['timestamp']}&url={url}"
    )
    return hashlib.sha1(raw.encode()).hexdigest()


def stored_ticket(cluster):
    """The jsapi_ticket every host shares (in Redis)."""
    value = cluster.redis.client().hget(f"wxsite:cred:{APPID}:jsapi_ticket", "value")
    assert value, "no jsapi_ticket in Redis: the hosts do not share theirs"
    return value.decode()


def check_signed(cluster, emu, response, url):
    """Assert the page's config is signed over ``url`` with the one shared ticket."""
    config = wx_config(response.text)
    assert config["appId"] == APPID
    assert config["signature"] == signature(stored_ticket(cluster), config, url)
    # The emulator's own check (its tickets, never shown), as the fake JS-SDK does it.
    verdict = emu.call(
        "POST",
        "/jssdk/verify",
        {**{k: config[k] for k in ("appId", "nonceStr", "timestamp", "signature")}, "url": url},
    )
    assert verdict["ok"], verdict


def make_cold(cluster):
    """Drop the shared credentials; wait until no worker can serve one from memory.

    A worker trusts its memory for ``REVALIDATE_EVERY`` seconds after it last read the
    store, so the wait is only paid when a value was stored (and so maybe remembered):
    leases and remembered failures alone are just deleted.
    """
    redis = cluster.redis.client()
    keys = redis.keys(CRED_KEYS)
    valued = [k for k in keys if redis.type(k) == b"hash" and redis.hexists(k, "value")]
    if keys:
        redis.delete(*keys)
    if valued:
        time.sleep(credentials.REVALIDATE_EVERY + 0.2)


def upstream(response):
    """Which host answered through the balancer (``127.0.0.1:port``)."""
    return response.headers.get("X-Upstream")
