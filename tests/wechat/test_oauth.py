"""Authlib's OAuth 2 session with the WeChat compliance layer: no Flask, the real emulator."""

import logging
import re
from urllib.parse import parse_qs, parse_qsl, urlsplit

import pytest

from wxsite.wechat import WeChatClient, WeChatError, protocol
from wxsite.wechat.http import Transport
from wxsite.wechat.oauth import WeChatOAuth2Session, authorize_url

APPID, SECRET = protocol.EMULATOR_APPID, protocol.EMULATOR_SECRET
CALLBACK = "http://127.0.0.1:5000/auth/callback"


class RecordingTransport(Transport):
    """The real transport, remembering the requests Authlib prepared."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.sent = []

    def send(self, path, send):
        def record(timeout):
            response = send(timeout)
            self.sent.append(response.request)
            return response

        return super().send(path, record)


@pytest.fixture
def wechat_client(emu):
    wechat = WeChatClient(APPID, SECRET, None, api_base=emu.base_url, open_base=emu.base_url)
    wechat.http = RecordingTransport(emu.base_url, deadline=6)
    return wechat


def authorize(wechat_client, emu, scope=protocol.SCOPE_BASE, user="zhangsan"):
    """Return (state, code) after the user walks the emulator's authorization."""
    with wechat_client.oauth_session() as session:
        link, state = session.create_authorization_url(
            wechat_client.oauth_settings()["authorize_url"], redirect_uri=CALLBACK, scope=scope
        )
    query = parse_qs(urlsplit(emu.authorize(link, user=user)).query)
    assert query["state"] == [state]
    return state, query["code"][0]


def test_authlib_generates_the_state_and_wechat_order_builds_the_link(wechat_client, emu):
    with wechat_client.oauth_session() as session:
        link, state = session.create_authorization_url(
            wechat_client.oauth_settings()["authorize_url"],
            redirect_uri=CALLBACK,
            scope="snsapi_base",
        )
        _, other = session.create_authorization_url(
            wechat_client.oauth_settings()["authorize_url"],
            redirect_uri=CALLBACK,
            scope="snsapi_base",
        )
    assert re.fullmatch(r"[A-Za-z0-9]{30}", state) and state != other
    assert link == authorize_url(emu.base_url, APPID, CALLBACK, "snsapi_base", state)
    assert link.endswith("&connect_redirect=1#wechat_redirect")


def test_authorize_link_needs_the_authorize_endpoint():
    session = WeChatOAuth2Session(APPID, SECRET)
    with pytest.raises(ValueError):
        session.create_authorization_url("https://example.test/authorize", redirect_uri=CALLBACK)


def test_code_exchange_is_a_get_with_appid_and_secret(wechat_client, emu):
    _, code = authorize(wechat_client, emu, scope=protocol.SCOPE_USERINFO)
    token = wechat_client.exchange_code(code)
    users = emu.users()
    assert token.openid == users["zhangsan"]["openids"][APPID]
    assert token.unionid == users["zhangsan"]["unionid"]
    assert token.scope == protocol.SCOPE_USERINFO and token.refresh_token
    (request,) = wechat_client.http.sent
    assert request.method == "GET" and request.body is None
    assert "Authorization" not in request.headers
    params = dict(parse_qsl(urlsplit(request.url).query))
    assert params == {
        "grant_type": "authorization_code",
        "code": code,
        "appid": APPID,
        "secret": SECRET,
    }
    assert "secret" not in repr(token) and token.access_token not in repr(token)


def test_refresh_is_a_get_with_appid_and_no_secret(wechat_client, emu):
    _, code = authorize(wechat_client, emu)
    first = wechat_client.exchange_code(code)
    fresh = wechat_client.refresh_web_token(first.refresh_token)
    assert fresh.openid == first.openid and fresh.access_token != first.access_token
    request = wechat_client.http.sent[-1]
    assert urlsplit(request.url).path == protocol.SNS_REFRESH_TOKEN and request.method == "GET"
    params = dict(parse_qsl(urlsplit(request.url).query))
    assert params == {
        "grant_type": "refresh_token",
        "refresh_token": first.refresh_token,
        "appid": APPID,
    }


@pytest.mark.parametrize(
    "errcode",
    [
        protocol.INVALID_CODE,
        protocol.CODE_USED,
        protocol.INVALID_APPSECRET,
        protocol.INVALID_APPID,
        protocol.IP_NOT_WHITELISTED,
        protocol.QUOTA_REACHED,
    ],
)
def test_errcodes_in_http_200_become_wechat_errors(wechat_client, emu, errcode):
    _, code = authorize(wechat_client, emu)
    emu.fault(protocol.SNS_ACCESS_TOKEN, errcode=errcode)
    with pytest.raises(WeChatError) as caught:
        wechat_client.exchange_code(code)
    assert caught.value.errcode == errcode and caught.value.path == protocol.SNS_ACCESS_TOKEN
    assert emu.count(protocol.SNS_ACCESS_TOKEN) == 1  # no retry: it cannot help


def test_busy_is_retried_within_bounds(wechat_client, emu):
    _, code = authorize(wechat_client, emu)
    emu.fault(protocol.SNS_ACCESS_TOKEN, errcode=protocol.SYSTEM_BUSY)
    assert wechat_client.exchange_code(code).openid  # one busy answer, then the real one
    emu.fault(protocol.SNS_ACCESS_TOKEN, errcode=protocol.SYSTEM_BUSY, count=-1)
    with pytest.raises(WeChatError) as caught:
        wechat_client.exchange_code(code)
    assert caught.value.errcode == protocol.SYSTEM_BUSY
    assert emu.count(protocol.SNS_ACCESS_TOKEN) <= 2 + 3


@pytest.mark.parametrize(
    "fault",
    [
        {"status": 502},
        {"body": "<html>bad gateway</html>", "content_type": "text/html"},
        {"body": '{"openid": ', "content_type": "application/json"},
        {"body": '{"errcode": "x"}', "content_type": "application/json"},
        {"body": '{"access_token": "x"}', "content_type": "application/json"},
        {"body": '{"error": "invalid_grant"}', "content_type": "application/json"},
    ],
)
def test_broken_answers_are_unavailable(wechat_client, emu, fault):
    _, code = authorize(wechat_client, emu)
    emu.fault(protocol.SNS_ACCESS_TOKEN, count=-1, **fault)
    with pytest.raises(WeChatError) as caught:
        wechat_client.exchange_code(code)
    assert caught.value.unavailable


def test_logs_name_the_path_only(wechat_client, emu, caplog):
    caplog.set_level(logging.DEBUG, logger="wxsite")
    _, code = authorize(wechat_client, emu)
    token = wechat_client.exchange_code(code)
    wechat_client.refresh_web_token(token.refresh_token)
    text = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("wxsite"))
    assert protocol.SNS_ACCESS_TOKEN in text and protocol.SNS_REFRESH_TOKEN in text
    for secret in (SECRET, code, token.access_token, token.refresh_token):
        assert secret not in text
