"""Web authorization (网页授权): Authlib's OAuth 2 client taught WeChat's dialect. No Flask.

Authlib's ``OAuth2Session`` does the OAuth part — state generation, the token request,
parsing the token (``expires_at``), refresh — and this module is the compliance layer for
what WeChat does differently:

- the authorize link: ``appid`` instead of ``client_id``, parameters in WeChat's exact
  order, ``connect_redirect=1`` and ``#wechat_redirect`` (``authorize_url``; Authlib's
  ``prepare_grant_uri`` orders and names them its own way, so the session overrides
  ``create_authorization_url``);
- client authentication: ``appid`` and ``secret`` in the query string of a GET, registered
  as Authlib client-auth methods (no Basic header, no POST body);
- refresh: a GET to its own endpoint carrying ``appid`` only (Authlib refreshes with a
  POST to the token endpoint, so ``refresh_token`` is a ``fetch_token`` with that grant);
- errors: HTTP 200 with ``errcode``; every request goes through ``http.Transport.send``
  (deadline, bounded retries on -1, errcode → ``WeChatError``, path-only logs);
- the token carries ``openid`` / ``unionid`` (``WebToken``).
"""

import functools
from dataclasses import dataclass, field
from urllib.parse import quote, urlsplit

from authlib.common.urls import add_params_to_uri
from authlib.integrations.base_client import OAuthError
from authlib.integrations.requests_client import OAuth2Session

from . import protocol
from .credentials import CODE_EXCHANGE
from .errors import WeChatError

#: Authlib client-auth method names (token endpoint and refresh endpoint).
AUTH_APPID_SECRET = "wechat_appid_secret"
AUTH_APPID = "wechat_appid"


def authorize_url(open_base, appid, redirect_uri, scope, state):
    """Return the authorization link exactly as WeChat matches it.

    WeChat compares this link strictly: parameters in this order, redirect_uri
    percent-encoded (even ``/`` and ``:``), ``#wechat_redirect`` last. A generic OAuth
    library sorts or encodes differently, hence the hand-built string.
    """
    if scope not in protocol.SCOPES:
        raise ValueError(f"unknown scope {scope!r}")
    return (
        f"{open_base}{protocol.AUTHORIZE}?appid={appid}"
        f"&redirect_uri={quote(redirect_uri, safe='')}"
        f"&response_type=code&scope={scope}&state={state}"
        "&connect_redirect=1#wechat_redirect"
    )


def _appid_and_secret(client, method, uri, headers, body):
    # sns/oauth2/access_token: the credentials ride in the query string of a GET.
    params = [("appid", client.client_id), ("secret", client.client_secret)]
    return add_params_to_uri(uri, params), headers, body


def _appid_only(client, method, uri, headers, body):
    # sns/oauth2/refresh_token takes the appid and no secret: send no more than needed.
    return add_params_to_uri(uri, [("appid", client.client_id)]), headers, body


class WeChatOAuth2Session(OAuth2Session):
    """Authlib's OAuth 2 session for one Official Account's web authorization.

    ``transport`` (a ``wxsite.wechat.http.Transport``) carries every request, so token
    calls get the same timeouts, retries, errcode handling and safe logging as the rest
    of the client. ``refresh_token_endpoint`` is WeChat's separate refresh URL. ``guard``
    (the client's ``CredentialManager``) shares lasting failures of the code exchange
    (wrong secret, quota) between workers, so that each callback does not repeat them.
    """

    def __init__(
        self,
        client_id=None,
        client_secret=None,
        transport=None,
        refresh_token_endpoint=None,
        guard=None,
        **kwargs,
    ):
        kwargs.setdefault("token_endpoint_auth_method", AUTH_APPID_SECRET)
        super().__init__(client_id, client_secret, **kwargs)
        self.transport = transport
        if transport is not None:
            # Authlib's own adapters would bound each recv only; ours holds the whole call's
            # deadline in the middle of a read, as for every other WeChat call.
            transport.mount(self)
        self.refresh_token_endpoint = refresh_token_endpoint
        self.guard = guard
        self.register_client_auth_method((AUTH_APPID_SECRET, _appid_and_secret))
        self.register_client_auth_method((AUTH_APPID, _appid_only))

    def create_authorization_url(self, url, state=None, code_verifier=None, **kwargs):
        """Return ``(link, state)``; Authlib generates the state, WeChat's order builds the link."""
        _, state = super().create_authorization_url(url, state=state, **kwargs)
        if not url.endswith(protocol.AUTHORIZE):
            raise ValueError("authorization endpoint must end with " + protocol.AUTHORIZE)
        open_base = url[: -len(protocol.AUTHORIZE)]
        redirect_uri = kwargs.get("redirect_uri") or self.redirect_uri
        scope = kwargs.get("scope") or self.scope
        return authorize_url(open_base, self.client_id, redirect_uri, scope, state), state

    def fetch_token(self, url=None, method="GET", **kwargs):
        """Trade a code (or, with ``grant_type="refresh_token"``, a refresh token) on a GET."""
        # Only the code exchange sends the secret; the refresh sends the appid alone.
        guard = self.guard if kwargs.get("grant_type") != "refresh_token" else None
        if guard is not None:
            guard.check_remembered(CODE_EXCHANGE)
        try:
            return super().fetch_token(url, method=method, **kwargs)
        except OAuthError as exc:
            # WeChat never answers OAuth's {"error": …}; anything Authlib refuses is garbage.
            raise WeChatError(None, f"unexpected token answer ({exc.error})", _path(url)) from None
        except WeChatError as exc:
            if guard is not None:
                guard.remember_failure(CODE_EXCHANGE, exc)
            raise

    def refresh_token(self, url=None, refresh_token=None, **kwargs):
        """Get a new web access_token with the 30-day refresh_token (GET, appid only)."""
        return self.fetch_token(
            url or self.refresh_token_endpoint,
            grant_type="refresh_token",
            refresh_token=refresh_token,
            auth=self.client_auth(AUTH_APPID),
            **kwargs,
        )

    def request(self, method, url, withhold_token=False, auth=None, **kwargs):
        """Send through the WeChat transport (deadline, retries, errcode check, safe log)."""
        send = functools.partial(
            super().request, method, url, withhold_token=withhold_token, auth=auth, **kwargs
        )
        if self.transport is None:
            return send()
        return self.transport.send(_path(url), lambda timeout: send(timeout=timeout))


def _path(url):
    # Logs and errors name the path only: the query carries appid, secret and code.
    return urlsplit(url or "").path


@dataclass
class WebToken:
    """What the code exchange (or a refresh) returns: a per-user web credential."""

    openid: str
    access_token: str = field(repr=False)
    refresh_token: str = field(repr=False)
    expires_in: int
    scope: str
    unionid: str | None = None
    is_snapshotuser: bool = False

    @classmethod
    def from_response(cls, data):
        """Build from WeChat's token JSON (or Authlib's token), refusing one without openid."""
        if not data.get("openid") or not data.get("access_token"):
            raise WeChatError(None, "token response without openid", protocol.SNS_ACCESS_TOKEN)
        return cls(
            openid=data["openid"],
            access_token=data["access_token"],
            refresh_token=data.get("refresh_token", ""),
            expires_in=int(data.get("expires_in", 7200)),
            scope=data.get("scope", protocol.SCOPE_BASE),
            unionid=data.get("unionid") or None,
            is_snapshotuser=bool(data.get("is_snapshotuser")),
        )
