"""The WeChat client: one object per Official Account, built from plain values."""

import hmac
import time

from . import jssdk, protocol
from .credentials import CODE_EXCHANGE, CredentialManager
from .errors import WeChatError
from .http import Transport
from .media import save_stream
from .oauth import WebToken, WeChatOAuth2Session

ACCESS_TOKEN = "access_token"
JSAPI_TICKET = "jsapi_ticket"


class WeChatClient:
    """Speak to WeChat for one appid: OAuth, global credentials, JS-SDK, media."""

    def __init__(
        self,
        appid,
        secret,
        store,
        api_base=protocol.API_BASE,
        open_base=protocol.OPEN_BASE,
        token_api="stable",
        clock=time.time,
        read_timeout=5.0,
        deadline=15.0,
        **credential_options,
    ):
        self.appid = appid
        self._secret = secret
        self.open_base = open_base.rstrip("/")
        self.token_api = token_api
        self.clock = clock
        self.http = Transport(api_base, read_timeout=read_timeout, deadline=deadline)
        token_path = protocol.TOKEN if token_api == "classic" else protocol.STABLE_TOKEN
        self.credentials = CredentialManager(
            appid,
            store,
            {ACCESS_TOKEN: self._fetch_access_token, JSAPI_TICKET: self._fetch_jsapi_ticket},
            clock=clock,
            deadline=deadline,
            requires={JSAPI_TICKET: ACCESS_TOKEN},
            paths={
                ACCESS_TOKEN: token_path,
                JSAPI_TICKET: protocol.TICKET,
                CODE_EXCHANGE: protocol.SNS_ACCESS_TOKEN,
            },
            **credential_options,
        )

    def __repr__(self):
        return f"<WeChatClient {self.appid}>"

    # -- global credentials ---------------------------------------------------------

    def access_token(self):
        """Return the shared global access_token."""
        return self.credentials.get(ACCESS_TOKEN)

    def jsapi_ticket(self):
        """Return the shared jsapi_ticket."""
        return self.credentials.get(JSAPI_TICKET)

    def force_refresh_token(self):
        """Retire the shared access_token for a new one (stable_token ``force_refresh``)."""
        # For a leaked token only: WeChat allows 20 a day, 30 s apart; the manager counts
        # them in the shared store. A classic fetch always issues a new token, so classic
        # mode has nothing to force (`wx token --refresh` is its rotation).
        if self.token_api == "classic":
            raise ValueError("force_refresh is a stable_token option (WX_TOKEN_API=classic)")
        return self.credentials.force_refresh(
            ACCESS_TOKEN, lambda: self._fetch_access_token(force=True)
        )

    def with_token(self, call):
        """Run ``call(access_token)``; on a stale-token errcode refresh once and retry once."""
        token = self.access_token()
        try:
            return call(token)
        except WeChatError as exc:
            if not exc.credential_invalid:
                raise
            self.credentials.invalidate(ACCESS_TOKEN, token)
            return call(self.access_token())

    def _fetch_access_token(self, force=False):
        if self.token_api == "classic":
            data = self.http.get_json(
                protocol.TOKEN,
                {"grant_type": "client_credential", "appid": self.appid, "secret": self._secret},
            )
        else:
            data = self.http.post_json(
                protocol.STABLE_TOKEN,
                json={
                    "grant_type": "client_credential",
                    "appid": self.appid,
                    "secret": self._secret,
                    "force_refresh": force,
                },
            )
        return _required(data, "access_token", protocol.TOKEN), int(data.get("expires_in", 7200))

    def _fetch_jsapi_ticket(self, token):
        # One call: the credential manager gets the token first and retries a stale one.
        data = self.http.get_json(protocol.TICKET, {"access_token": token, "type": "jsapi"})
        return _required(data, "ticket", protocol.TICKET), int(data.get("expires_in", 7200))

    def check_secret(self):
        """Return the stable token's remaining seconds if WeChat accepts the AppID and secret."""
        # stable_token without force_refresh hands back the current stable token and is
        # isolated from cgi-bin/token: unlike a classic fetch it retires no token in use.
        data = self.http.post_json(
            protocol.STABLE_TOKEN,
            json={
                "grant_type": "client_credential",
                "appid": self.appid,
                "secret": self._secret,
                "force_refresh": False,
            },
        )
        _required(data, "access_token", protocol.STABLE_TOKEN)
        return int(data.get("expires_in", 7200))

    # -- JS-SDK -----------------------------------------------------------------------

    def jssdk_config(self, url, js_api_list, open_tag_list=()):
        """Return a signed ``wx.config`` for ``url`` (the URL the browser sees)."""
        config = jssdk.config(self.appid, self.jsapi_ticket(), url, js_api_list, now=self.clock())
        return _with_open_tags(config, open_tag_list)

    def jssdk_retry_config(
        self, url, js_api_list, timestamp, noncestr, signature, open_tag_list=()
    ):
        """Return a config to retry with after the page at ``url`` failed its own, or None."""
        # Signed over this URL with the shared ticket: WeChat refused the ticket itself, so
        # it is fetched anew (at most once per few minutes for all workers). Otherwise the
        # page had an older ticket or another URL, and signing it now with the shared one
        # is the fix, no WeChat call needed.
        url = url.split("#", 1)[0]
        shared = self.credentials.stored(JSAPI_TICKET)
        refused = None
        if shared is not None:
            expected = jssdk.signature(shared, noncestr, timestamp, url)
            if hmac.compare_digest(expected.encode(), str(signature).encode()):
                refused = shared
        ticket = self.credentials.recheck(JSAPI_TICKET, refused)
        if refused is not None and ticket == refused:
            return None  # rechecked lately and WeChat still refuses it: not the ticket
        config = jssdk.config(self.appid, ticket, url, js_api_list, now=self.clock())
        return _with_open_tags(config, open_tag_list)

    # -- web authorization --------------------------------------------------------------

    def oauth_settings(self):
        """Return the keyword arguments of Authlib's client for this account.

        The site registers them with Authlib's Flask OAuth registry; ``oauth_session``
        builds a plain session from the same values.
        """
        return {
            "client_id": self.appid,
            "client_secret": self._secret,
            "authorize_url": self.open_base + protocol.AUTHORIZE,
            "access_token_url": self.http.base + protocol.SNS_ACCESS_TOKEN,
            "client_kwargs": {
                "transport": self.http,
                "refresh_token_endpoint": self.http.base + protocol.SNS_REFRESH_TOKEN,
                # Lasting failures of the code exchange are shared by every worker.
                "guard": self.credentials,
            },
        }

    def oauth_session(self):
        """Return an Authlib OAuth 2 session speaking WeChat's web authorization."""
        settings = self.oauth_settings()
        return WeChatOAuth2Session(
            settings["client_id"],
            settings["client_secret"],
            authorization_endpoint=settings["authorize_url"],
            token_endpoint=settings["access_token_url"],
            **settings["client_kwargs"],
        )

    def exchange_code(self, code):
        """Trade an authorization code for the user's web token (single use, 5 minutes)."""
        with self.oauth_session() as session:
            return WebToken.from_response(session.fetch_token(code=code))

    def refresh_web_token(self, refresh_token):
        """Get a new web access_token with the user's 30-day refresh_token."""
        with self.oauth_session() as session:
            return WebToken.from_response(session.refresh_token(refresh_token=refresh_token))

    def web_profile(self, web_access_token, openid):
        """Return ``sns/userinfo``: the consented profile, with the person's web token."""
        return self.http.get_json(
            protocol.SNS_USERINFO,
            {"access_token": web_access_token, "openid": openid, "lang": "zh_CN"},
        )

    def check_web_token(self, web_access_token, openid):
        """Return True if WeChat still accepts this web access_token."""
        try:
            self.http.get_json(
                protocol.SNS_AUTH, {"access_token": web_access_token, "openid": openid}
            )
        except WeChatError as exc:
            if exc.unavailable:
                raise
            return False
        return True

    def follower_info(self, openid):
        """Return ``cgi-bin/user/info`` (follow status) with the global token."""
        return self.with_token(
            lambda token: self.http.get_json(
                protocol.USER_INFO, {"access_token": token, "openid": openid, "lang": "zh_CN"}
            )
        )

    # -- parametric QR codes --------------------------------------------------------

    def create_temporary_qrcode(self, scene_str, expire_seconds):
        """Return ``(ticket, url)`` of a temporary QR_STR_SCENE code (global token).

        ``url`` is what the code says: render it as a QR code, no ``showqrcode`` needed.
        Scanning it pushes SCAN (a follower) or subscribe with ``qrscene_<scene_str>``.
        """
        body = {
            "expire_seconds": int(expire_seconds),
            "action_name": "QR_STR_SCENE",
            "action_info": {"scene": {"scene_str": scene_str}},
        }
        data = self.with_token(
            lambda token: self.http.post_json(
                protocol.QRCODE_CREATE, params={"access_token": token}, json=body
            )
        )
        return (
            _required(data, "ticket", protocol.QRCODE_CREATE),
            _required(data, "url", protocol.QRCODE_CREATE),
        )

    # -- media ----------------------------------------------------------------------

    def download_media(self, media_id, directory, max_bytes, high_quality_voice=False):
        """Stream a media_id into a temp file in ``directory``; return a ``Download``."""
        path = protocol.MEDIA_GET_JSSDK if high_quality_voice else protocol.MEDIA_GET
        deadline = time.monotonic() + self.http.deadline

        def fetch(token):
            response = self.http.stream(path, {"access_token": token, "media_id": media_id})
            return save_stream(response, directory, max_bytes, deadline, path)

        return self.with_token(fetch)


def _required(data, key, path):
    value = data.get(key)
    if not isinstance(value, str) or not value:
        raise WeChatError(None, f"response without {key}", path)
    return value


def _with_open_tags(config, open_tag_list):
    # openTagList sits beside jsApiList in wx.config; the signature covers neither.
    if open_tag_list:
        config["openTagList"] = list(open_tag_list)
    return config
