"""The logged-in user: a WeChat identity (appid + openid), loaded from a login session."""

from flask import current_app
from flask_login import UserMixin

from .. import clock, store
from ..extensions import login_manager

#: How long a login lasts without a new authorization (silent snsapi_base is cheap).
LOGIN_MAX_AGE = 7 * 86400
#: A profile older than this is fetched again through snsapi_userinfo.
PROFILE_MAX_AGE = 7 * 86400


class WeChatUser(UserMixin):
    """What ``current_user`` is: one WeChat identity and the person behind it."""

    def __init__(self, login_id, row):
        self.login_id = login_id
        self.wechat_user_id = row["id"]
        self.appid = row["appid"]
        self.openid = row["openid"]
        self.unionid = row["unionid"]
        self.person_id = row["person_id"]
        self.nickname = row["nickname"]
        self.headimgurl = row["headimgurl"]
        self.account_id = row["account_id"]
        self.account_username = row["account_username"]
        self.scope = row["scope"]
        self.profile_at = row["profile_at"]
        self.row = row

    def get_id(self):
        # The session cookie holds a revocable login id, never the openid.
        return self.login_id

    @property
    def id(self):
        return self.login_id

    @property
    def profile_fresh(self):
        """True when we hold a consented profile that is not stale."""
        return bool(self.profile_at) and clock.now() - self.profile_at < PROFILE_MAX_AGE


@login_manager.user_loader
def load_user(login_id):
    """Return the user of a live login session (revoked or expired ones are anonymous)."""
    app = current_app._get_current_object()
    row = store.get_login(store.get_db(), login_id, LOGIN_MAX_AGE, clock.source(app)())
    if row is None or row["appid"] != app.config["WX_APPID"]:
        return None
    return WeChatUser(login_id, row)
