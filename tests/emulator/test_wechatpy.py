"""wechatpy, a widely used WeChat SDK, works against the emulator unchanged."""

import io
from urllib.parse import parse_qs, urlsplit

import pytest

from wxsite.wechat import protocol

from .conftest import APPID, CALLBACK, SECRET

wechatpy = pytest.importorskip("wechatpy")
from wechatpy import WeChatClient  # noqa: E402
from wechatpy.exceptions import WeChatClientException  # noqa: E402
from wechatpy.oauth import WeChatOAuth  # noqa: E402

JPEG = b"\xff\xd8\xff\xe0" + bytes(range(256)) * 64 + b"\xff\xd9"


def client_for(base_url):
    """Return a WeChatClient whose every URL points at the emulator."""

    class EmulatedClient(WeChatClient):
        API_BASE_URL = base_url + "/cgi-bin/"

        # wechatpy hard-codes the token URL; point it at the emulator too.
        def fetch_access_token(self):
            return self._fetch_access_token(
                url=self.API_BASE_URL + "token",
                params={
                    "grant_type": "client_credential",
                    "appid": self.appid,
                    "secret": self.secret,
                },
            )

    return EmulatedClient(APPID, SECRET)


def oauth_for(base_url, scope="snsapi_userinfo", state="wechatpy1"):
    """Return a WeChatOAuth pointed at the emulator."""
    oauth = WeChatOAuth(APPID, SECRET, CALLBACK, scope=scope, state=state)
    oauth.API_BASE_URL = base_url + "/"
    oauth.OAUTH_BASE_URL = base_url + "/connect/"
    return oauth


def test_client_fetches_a_token(emulator):
    client = client_for(emulator.base_url)
    assert len(client.access_token) >= 64
    assert emulator.control.counters()[protocol.TOKEN] == 1


def test_client_uploads_and_downloads_media(emulator):
    client = client_for(emulator.base_url)
    result = client.media.upload("image", io.BytesIO(JPEG))
    assert result["type"] == "image"
    response = client.media.download(result["media_id"])
    assert response.content == JPEG
    assert response.headers["Content-Type"] == "image/jpeg"


def test_client_retries_after_revoke(emulator):
    client = client_for(emulator.base_url)
    client.media.upload("image", io.BytesIO(JPEG))
    emulator.control.revoke(APPID)
    # wechatpy sees 40001, fetches a new token and retries once.
    client.media.upload("image", io.BytesIO(JPEG))
    assert emulator.control.counters()[protocol.TOKEN] == 2


def test_client_sees_user_info_and_errors(emulator):
    client = client_for(emulator.base_url)
    openid = emulator.control.users()["zhangsan"]["openids"][APPID]
    assert client.user.get(openid)["subscribe"] == 1
    with pytest.raises(WeChatClientException) as caught:
        client.user.get("o-unknown")
    assert caught.value.errcode == protocol.INVALID_OPENID


def test_client_gets_a_jsapi_ticket(emulator):
    client = client_for(emulator.base_url)
    assert client.jsapi.get_jsapi_ticket()
    assert emulator.control.counters()[protocol.TICKET] == 1


def test_oauth_authorize_url_is_accepted_and_code_exchanged(emulator):
    oauth = oauth_for(emulator.base_url)
    url = oauth.authorize_url
    assert url.endswith("#wechat_redirect")
    r = emulator.http.get(url, allow_redirects=False)
    assert r.status_code == 200 and "申请获取你的昵称、头像" in r.text
    location = emulator.control.authorize(url, "zhaoliu")
    query = parse_qs(urlsplit(location).query)
    assert query["state"] == ["wechatpy1"]
    token = oauth.fetch_access_token(query["code"][0])
    assert token["openid"] == emulator.control.users()["zhaoliu"]["openids"][APPID]
    info = oauth.get_user_info()
    assert info["nickname"] == "赵六"
    assert oauth.check_access_token()
    refreshed = oauth.refresh_access_token(token["refresh_token"])
    assert refreshed["access_token"] != token["access_token"]


def test_oauth_without_state_and_base_scope(emulator):
    oauth = oauth_for(emulator.base_url, scope="snsapi_base", state="")
    location = emulator.control.authorize(oauth.authorize_url, "lisi")
    assert "state=" not in location
    code = parse_qs(urlsplit(location).query)["code"][0]
    assert oauth.fetch_access_token(code)["scope"] == "snsapi_base"
