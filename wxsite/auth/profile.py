"""Keep a person's consented profile fresh with their server-side web tokens."""

import enum
import logging

from .. import clock, store, wx
from ..wechat import WeChatError, protocol

log = logging.getLogger("wxsite.auth")

#: userinfo errcodes meaning "this person/account will not give a profile": stop asking.
DECLINED = (protocol.API_UNAUTHORIZED, protocol.USER_UNAUTHORIZED)


class Profile(enum.Enum):
    """What asking WeChat for a person's profile came to."""

    STORED = "stored"
    DECLINED = "declined"  # this person or account gives no profile: stop asking
    STALE_TOKEN = "stale-token"  # the web token was refused: authorize again
    UNAVAILABLE = "unavailable"  # WeChat could not answer now


def fetch_profile(db, wechat_user_id, openid, web_access_token):
    """Fetch ``sns/userinfo`` and store it; return a ``Profile`` (other errors raise)."""
    try:
        info = wx.client().web_profile(web_access_token, openid)
    except WeChatError as exc:
        if exc.errcode in DECLINED:
            return Profile.DECLINED
        if exc.credential_invalid or exc.errcode == protocol.INVALID_OPENID:
            # The *web* token is stale: the person must authorize again. The global
            # access_token is a different credential and stays untouched.
            return Profile.STALE_TOKEN
        raise
    store.save_profile(db, wechat_user_id, info)
    return Profile.STORED


def refresh_silently(db, row):
    """Try to refresh a stale profile without a redirect; return True if it worked."""
    if row["scope"] != protocol.SCOPE_USERINFO or not row["refresh_token"]:
        return False
    if (row["refresh_expires"] or 0) < clock.now():
        return False
    client = wx.client()
    token = row["web_access_token"]
    try:
        if (row["web_token_expires"] or 0) < clock.now() + 60 or not client.check_web_token(
            token, row["openid"]
        ):
            fresh = client.refresh_web_token(row["refresh_token"])
            store.save_web_token(db, row["id"], fresh)
            token = fresh.access_token
        return fetch_profile(db, row["id"], row["openid"], token) is Profile.STORED
    except WeChatError as exc:
        log.info("silent profile refresh failed: errcode=%s", exc.errcode)
        return False
