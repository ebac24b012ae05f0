"""Routes: /auth/login, /auth/callback, /auth/bind, /auth/unbind, /auth/logout, /me.

Authorization goes through Authlib's Flask OAuth client (``wxsite.auth.oauth``: state,
its storage and validation, the code exchange) with WeChat's dialect in
``wxsite.wechat.oauth``. The callback is written out here rather than calling Authlib's
``authorize_access_token``, because WeChat delivers callbacks twice and people press Back:
see ``wxsite.auth.oauth`` for the reasons and the split.
"""

import logging
import re
import time

from authlib.common.security import generate_token
from flask import (
    Blueprint,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_login import current_user, login_user, logout_user

from .. import accounts, clock, store, wx
from ..menu import home_entry
from ..errors import error_response, wechat_failure
from ..wechat import WeChatError, WebToken, protocol
from . import oauth
from .decorators import in_wechat, open_in_wechat, wechat_required
from .forms import BindForm
from .nexturl import next_url, safe_next
from .profile import Profile, fetch_profile
from .users import load_user

log = logging.getLogger("wxsite.auth")
bp = Blueprint("auth", __name__)
home_entry(bp, "me", "我的资料", "微信头像、昵称与绑定账号")

STATE_RE = re.compile(protocol.STATE_PATTERN)
CODE_RE = re.compile(r"[A-Za-z0-9_-]{1,512}")
#: Bind attempts allowed per account, per person and per IP within the window.
FAIL_WINDOW = 900
MAX_ACCOUNT_FAILURES = 5
MAX_CLIENT_FAILURES = 10
#: The window of WXSITE_LOGIN_STARTS_PER_IP.
LOGIN_START_WINDOW = 600
#: Codes that mean "this code is no good" (used, invalid, expired): restart once.
#: Seconds a follow state asked of WeChat is shown before it is asked again (push off).
FOLLOW_RECHECK = 600
BAD_CODE = (protocol.INVALID_CODE, protocol.CODE_USED, protocol.CODE_EXPIRED)

INVALID_LINK = "登录链接无效，请重新进入"


@bp.record_once
def _init_oauth(state):
    # Authlib's registry is per app (created here, when the blueprint is registered).
    oauth.init_app(state.app)


@bp.get("/auth/login")
def login():
    """Start web authorization: 302 to WeChat's authorize link."""
    scope = request.args.get("scope", protocol.SCOPE_BASE)
    if scope not in protocol.SCOPES:
        scope = protocol.SCOPE_BASE
    next_path = safe_next(request.args.get("next"))
    if not in_wechat():
        return open_in_wechat(request.host_url.rstrip("/") + next_url(next_path), next_path)
    # Each start keeps a row (the state) for a day: bound what one client can write.
    limit = {f"login-start:{request.remote_addr}": current_app.config["WXSITE_LOGIN_STARTS_PER_IP"]}
    if store.take_attempt(store.get_db(), limit, LOGIN_START_WINDOW):
        return error_response(429, "操作太频繁", "请稍后再试。", code="too_many_logins")
    redirect_uri = url_for("auth.callback", _external=True)
    return redirect(oauth.start(redirect_uri, scope, next_path))


@bp.get("/auth/callback")
def callback():
    """Finish authorization: trade the code, log in, 302 away from the ?code= URL."""
    state = request.args.get("state", "")
    code = request.args.get("code")
    if not STATE_RE.fullmatch(state):
        return _restart(400, INVALID_LINK)  # before any upstream call (no state: login CSRF)
    attempt = oauth.attempt(state)
    if attempt is None:
        return _restart(400, INVALID_LINK)
    user_id = attempt.wechat_user_id
    if user_id and current_user.is_authenticated and current_user.wechat_user_id == user_id:
        return redirect(next_url(attempt.next))  # Back/refresh onto the callback after success
    if attempt.expired:
        return _restart(400, "链接已过期，请重新进入", attempt.next)
    if not oauth.started_here(state):
        # Started in another browser: the login CSRF that would bind the victim to the
        # attacker's WeChat. No upstream call, no session change.
        return _restart(403, "登录已失效，请重试")
    if user_id:
        return _log_in(user_id, attempt.next)  # second delivery; the first response was lost
    if code is None:
        if attempt.scope == protocol.SCOPE_USERINFO:
            session["userinfo_declined"] = True
        retry = url_for("auth.login", next=attempt.next, scope=attempt.scope)
        return error_response(
            403,
            "你已取消授权",
            "需要你的授权才能继续：点下方的按钮，在授权页选「允许」。",
            code="cancelled",
            retry_url=retry,
        )
    if not CODE_RE.fullmatch(code):
        return _restart(400, INVALID_LINK, attempt.next)
    return _exchange(state, attempt, code)


def _exchange(state, attempt, code):
    db = store.get_db()
    # A second delivery waits as long as the first one's exchange may take; a claim older
    # than that belongs to a request that died, and is taken over.
    budget = current_app.config["WXSITE_DEADLINE"] + 2
    deadline = time.monotonic() + budget
    while not store.claim_auth_state(db, attempt.key, clock.now(), clock.now() - budget):
        # WeChat delivered the callback twice: the other request is trading its code.
        finished = oauth.attempt(state).wechat_user_id
        if finished:
            return _log_in(finished, attempt.next)
        if time.monotonic() > deadline:
            return _restart(503, "登录处理中，请稍后重试", attempt.next)
        store.close_db()  # hold no pooled connection while waiting for the other request
        time.sleep(0.1)
        db = store.get_db()
    try:
        token = WebToken.from_response(oauth.client().fetch_access_token(code=code))
    except WeChatError as exc:
        store.release_auth_state(db, attempt.key)
        return _exchange_failed(exc, attempt)
    if token.is_snapshotuser:
        # WeChat's read-only snapshot page: the openid is virtual. Store nothing, log no one
        # in; the attempt is given back so the full-service login that follows can finish.
        store.release_auth_state(db, attempt.key)
        log.info("snapshot-page identity not stored; asked to use the full service")
        retry = url_for("auth.login", next=attempt.next, scope=attempt.scope)
        return render_template("auth/snapshot.html", retry_url=retry), 200
    user_id = store.save_wechat_login(db, current_app.config["WX_APPID"], token)
    declined = session.get("userinfo_declined", False)
    reauth = False
    if token.scope == protocol.SCOPE_USERINFO:
        try:
            outcome = fetch_profile(db, user_id, token.openid, token.access_token)
        except WeChatError as exc:
            log.warning("userinfo after login failed: errcode=%s", exc.errcode)
            outcome = Profile.UNAVAILABLE
        # Anything but a profile stops automatic escalation for this session (no loops);
        # /me offers a 去授权 link instead.
        declined = outcome is not Profile.STORED
        # A web token refused on its first use (40001/42001): authorize again, once.
        reauth = outcome is Profile.STALE_TOKEN and not session.get("auth_retried")
    store.finish_auth_state(db, attempt.key, user_id)
    if reauth:
        response = _log_in(user_id, url_for("auth.login", next=attempt.next, scope=token.scope))
        session["auth_retried"] = True
        return response
    return _log_in(user_id, attempt.next, declined)


def _exchange_failed(exc, attempt):
    next_path = attempt.next
    if exc.errcode in BAD_CODE:
        if not session.get("auth_retried"):
            # One automatic fresh start (e.g. Back onto an old callback); never a loop.
            session["auth_retried"] = True
            return redirect(url_for("auth.login", next=next_path, scope=attempt.scope))
        return _restart(400, "授权失败，请重试", next_path)
    status, title, detail = wechat_failure(exc)
    retry = url_for("auth.login", next=next_path, scope=attempt.scope)
    return error_response(status, title, detail, code=f"wechat_{exc.errcode}", retry_url=retry)


def _log_in(wechat_user_id, next_path, declined=None):
    """Start a fresh session for ``wechat_user_id`` and go to ``next_path``."""
    start_session(wechat_user_id, declined)
    return redirect(next_url(next_path))


def start_session(wechat_user_id, declined=None):
    """Start a fresh session for ``wechat_user_id``: nothing from the old one survives."""
    if declined is None:
        declined = session.get("userinfo_declined")
    previous = current_user.login_id if current_user.is_authenticated else None
    session.clear()
    db = store.get_db()
    if previous:
        store.revoke_login(db, previous)  # the pre-rotation cookie stops working too
    login_id = generate_token(40)
    store.create_login(db, login_id, wechat_user_id)
    login_user(load_user(login_id))
    session.permanent = True
    if declined:
        session["userinfo_declined"] = True


def _restart(status, title, next_path="/"):
    retry = url_for("auth.login", next=next_path)
    return error_response(status, title, "", code="auth_failed", retry_url=retry)


@bp.route("/auth/bind", methods=["GET", "POST"])
@wechat_required
def bind():
    """Bind this WeChat identity to an existing site account."""
    next_path = safe_next(request.values.get("next"), default="/me")
    if current_user.account_id:
        flash(f"已绑定账号 {current_user.account_username}", "info")
        return redirect(next_url(next_path))
    # Form fields only: Flask-WTF would also read a JSON body, numbers and lists included.
    form = BindForm(formdata=request.form if request.method == "POST" else None)
    error = None
    status = 200
    if form.validate_on_submit():
        error, status = _try_bind(form.username.data.strip(), form.password.data)
        if error is None:
            response = _log_in(current_user.wechat_user_id, next_path)  # rotate on privilege change
            flash("绑定成功", "success")
            return response
    elif request.method == "POST":
        error, status = "请填写用户名和密码", 400
    html = render_template("auth/bind.html", form=form, error=error, next=next_path)
    return html, status


def _try_bind(username, password):
    db = store.get_db()
    limits = {
        f"account:{username.lower()}": MAX_ACCOUNT_FAILURES,
        f"person:{current_user.person_id}": MAX_CLIENT_FAILURES,
        f"ip:{request.remote_addr}": MAX_CLIENT_FAILURES * 3,
    }
    # Counted before the password is checked: parallel guesses cannot slip in between a
    # read of the count and its increment.
    if store.take_attempt(db, limits, FAIL_WINDOW):
        return "尝试次数过多，请 15 分钟后再试", 429
    account = accounts.authenticate(db, username, password)
    if account is None:
        # The same words whether the username exists or not.
        return "用户名或密码错误", 400
    store.clear_failures(db, f"account:{username.lower()}")
    try:
        store.bind_account(db, current_user.person_id, account["id"])
    except store.AccountAlreadyBound:
        return "该账号已绑定其他微信，请先在原微信中解绑", 409
    except store.PersonAlreadyBound:
        return "你已绑定其他账号，请先解绑", 409
    return None, 200


@bp.post("/auth/unbind")
@wechat_required
def unbind():
    """Remove the binding between this person and their site account."""
    store.unbind_account(store.get_db(), current_user.person_id)
    flash("已解除绑定", "success")
    return redirect(url_for("auth.me"))


@bp.post("/auth/logout")
def logout():
    """End the login session for good (the old cookie stops working too)."""
    if current_user.is_authenticated:
        store.revoke_login(store.get_db(), current_user.login_id)
    logout_user()
    session.clear()
    flash("已退出登录", "success")
    return redirect(url_for("pages.home"))


@bp.get("/me")
@wechat_required(scope=protocol.SCOPE_USERINFO)
def me():
    """Show the profile: avatar, nickname, openid, unionid, follow status, binding."""
    db = store.get_db()
    # Pushes keep the stored state current; without them an answer is asked again after a
    # while, not on every view.
    since = None if wx.push_receiver() is not None else clock.now() - FOLLOW_RECHECK
    follows = store.get_follow(db, current_user.appid, current_user.openid, since)
    if follows is None:
        follows = _ask_follows(db)
    visits = store.share_visits(db, current_user.person_id)
    return render_template("auth/me.html", user=current_user, follows=follows, visits=visits)


def _ask_follows(db):
    """Ask WeChat once whether this person follows; pushes keep the answer current after."""
    try:
        info = wx.client().follower_info(current_user.openid)
    except WeChatError as exc:
        log.info("user/info unavailable: errcode=%s", exc.errcode)
        return None
    follows = bool(info.get("subscribe"))
    # With push, time 0: any subscribe/unsubscribe push, however old, is newer than this
    # answer. Without, the time of asking: it is asked again FOLLOW_RECHECK later.
    asked = 0 if wx.push_receiver() is not None else clock.now()
    store.set_follow(db, current_user.appid, current_user.openid, follows, asked)
    return follows
