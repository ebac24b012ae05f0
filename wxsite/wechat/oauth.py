"""Web authorization (网页授权) URLs and the sns/* calls, without Flask."""

from dataclasses import dataclass, field
from urllib.parse import quote

from . import protocol


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
    def from_response(cls, data, expected_appid=None):
        """Build from WeChat's JSON, refusing answers that lack an openid or token."""
        from .errors import WeChatError

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
