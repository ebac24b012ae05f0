"""Routes: /auth/login, /auth/callback, /auth/bind, /auth/unbind, /auth/logout, /me.

Authorization is hand-written over ``wxsite.wechat`` rather than Authlib's Flask client:
WeChat matches its authorize link byte for byte (parameter order, ``appid``,
``#wechat_redirect``), trades codes on a GET with ``appid``/``secret``, answers errors as
HTTP 200 with an errcode, and delivers callbacks twice — which needs the one-time state
kept server-side (``auth_states``), not in the cookie where Authlib keeps it. Authlib
still generates the state and the login ids.
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

from .. import accounts, store, wx
from ..errors import error_response, wechat_failure
from ..wechat import WeChatError, protocol
from .decorators import in_wechat, open_in_wechat, wechat_required
from .forms import BindForm
from .nexturl import safe_next
from .profile import fetch_profile
from .users import load_user

log = logging.getLogger("wxsite.auth")
bp = Blueprint("auth", __name__)

#: An authorization attempt older than this is refused (codes live 5 minutes).
STATE_TTL = 600
#: How long a second delivery of the callback waits for the first one to finish.
RACE_WAIT = 5.0
STATE_RE = re.compile(protocol.STATE_PATTERN)
CODE_RE = re.compile(r"[A-Za-z0-9_-]{1,512}")
#: Bind attempts: failures per account and per client within the window.
FAIL_WINDOW = 900
MAX_ACCOUNT_FAILURES = 5
MAX_CLIENT_FAILURES = 10
#: Codes that mean "this code is no good" (used, invalid, expired): restart once.
BAD_CODE = (protocol.INVALID_CODE, protocol.CODE_USED, protocol.CODE_EXPIRED)


@bp.after_request
def no_store(response):
    """Never cache auth pages: they carry one-time links and personal data."""
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/auth/login")
def login():
    """Start web authorization: 302 to WeChat's authorize link."""
    scope = request.args.get("scope", protocol.SCOPE_BASE)
    if scope not in protocol.SCOPES:
        scope = protocol.SCOPE_BASE
    next_path = safe_next(request.args.get("next"))
    if not in_wechat():
        return open_in_wechat(request.host_url.rstrip("/") + next_path)
    state = generate_token(32)
    store.create_auth_state(store.get_db(), state, _browser_key(), next_path, scope)
    redirect_uri = url_for("auth.callback", _external=True)
    return redirect(wx.client().authorize_url(redirect_uri, scope, state))


@bp.get("/auth/callback")
def callback():
    """Finish authorization: trade the code, log in, 302 away from the ?code= URL."""
    state = request.args.get("state", "")
    code = request.args.get("code")
    if not STATE_RE.fullmatch(state):
        return _restart(400, "登录链接无效，请重新进入")
    db = store.get_db()
    attempt = store.get_auth_state(db, state)
    if attempt is None:
        return _restart(400, "登录链接无效，请重新进入")
    next_path = attempt["next"]
    done = attempt["wechat_user_id"]
    if done and current_user.is_authenticated and current_user.wechat_user_id == done:
        return redirect(next_path)  # Back/refresh onto the callback after success
    if attempt["session_key"] != session.get("auth_key"):
        # Started in another browser: the login-CSRF that would bind the victim to the
        # attacker's WeChat. No upstream call, no session change.
        return _restart(403, "登录已失效，请重试")
    if done:
        return _log_in(done, next_path)  # second delivery; the first response was lost
    if time.time() - attempt["created_at"] > STATE_TTL:
        return _restart(400, "链接已过期，请重新进入", next_path)
    if code is None:
        if attempt["scope"] == protocol.SCOPE_USERINFO:
            session["userinfo_declined"] = True
        retry = url_for("auth.login", next=next_path, scope=attempt["scope"])
        return error_response(
            403, "您已取消授权", "需要授权才能继续。", code="cancelled", retry_url=retry
        )
    if not CODE_RE.fullmatch(code):
        return _restart(400, "登录链接无效，请重新进入", next_path)
    return _exchange(db, attempt, code)


def _exchange(db, attempt, code):
    state, next_path = attempt["state"], attempt["next"]
    deadline = time.monotonic() + RACE_WAIT
    while not store.claim_auth_state(db, state):
        # WeChat delivered the callback twice: the other request is trading its code.
        row = store.get_auth_state(db, state)
        if row["wechat_user_id"]:
            return _log_in(row["wechat_user_id"], next_path)
        if time.monotonic() > deadline:
            return _restart(503, "登录处理中，请稍后重试", next_path)
        time.sleep(0.1)
    try:
        token = wx.client().exchange_code(code)
    except WeChatError as exc:
        store.release_auth_state(db, state, exc.errcode)
        return _exchange_failed(exc, attempt)
    user_id = store.save_wechat_login(db, current_app.config["WX_APPID"], token)
    declined = session.get("userinfo_declined", False)
    if token.scope == protocol.SCOPE_USERINFO:
        try:
            declined = fetch_profile(db, user_id, token.openid, token.access_token) != "ok"
        except WeChatError as exc:
            log.warning("userinfo after login failed: errcode=%s", exc.errcode)
    store.finish_auth_state(db, state, user_id)
    return _log_in(user_id, next_path, declined)


def _exchange_failed(exc, attempt):
    next_path = attempt["next"]
    if exc.errcode in BAD_CODE:
        if current_user.is_authenticated:
            return redirect(next_path)
        if not session.get("auth_retried"):
            # One automatic fresh start (e.g. Back onto an old callback); never a loop.
            session["auth_retried"] = True
            return redirect(url_for("auth.login", next=next_path, scope=attempt["scope"]))
        return _restart(400, "授权失败，请重试", next_path)
    status, title, detail = wechat_failure(exc)
    retry = url_for("auth.login", next=next_path, scope=attempt["scope"])
    return error_response(status, title, detail, code=f"wechat_{exc.errcode}", retry_url=retry)


def _log_in(wechat_user_id, next_path, declined=None):
    """Start a fresh session for ``wechat_user_id``: nothing from the old one survives."""
    if declined is None:
        declined = session.get("userinfo_declined")
    session.clear()
    login_id = generate_token(40)
    store.create_login(store.get_db(), login_id, wechat_user_id)
    login_user(load_user(login_id))
    session.permanent = True
    if declined:
        session["userinfo_declined"] = True
    return redirect(next_path)


def _browser_key():
    # Binds an authorization attempt to this browser's session.
    if not session.get("auth_key"):
        session["auth_key"] = generate_token(24)
    return session["auth_key"]


def _restart(status, title, next_path="/"):
    retry = url_for("auth.login", next=next_path)
    return error_response(status, title, "", code="auth_failed", retry_url=retry)


@bp.route("/auth/bind", methods=["GET", "POST"])
@wechat_required
def bind():
    """Bind this WeChat identity to an existing site account."""
    next_path = safe_next(request.values.get("next"), default=url_for("auth.me"))
    if current_user.account_id:
        flash(f"已绑定账号 {current_user.account_username}", "info")
        return redirect(next_path)
    form = BindForm()
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
    keys = [
        f"account:{username.lower()}",
        f"person:{current_user.person_id}",
        f"ip:{request.remote_addr}",
    ]
    limits = [MAX_ACCOUNT_FAILURES, MAX_CLIENT_FAILURES, MAX_CLIENT_FAILURES * 3]
    if any(store.failures(db, k, FAIL_WINDOW) >= n for k, n in zip(keys, limits)):
        return "尝试次数过多，请 15 分钟后再试", 429
    account = accounts.authenticate(db, username, password)
    if account is None:
        for key in keys:
            store.record_failure(db, key, FAIL_WINDOW)
        # The same words whether the username exists or not.
        return "用户名或密码错误", 400
    store.clear_failures(db, keys[0])
    try:
        store.bind_account(db, current_user.person_id, account["id"])
    except store.BindingConflict as exc:
        if str(exc) == "account":
            return "该账号已绑定其他微信，请先在原微信中解绑", 409
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
    follows = None
    try:
        follows = bool(wx.client().user_info(current_user.openid).get("subscribe"))
    except WeChatError as exc:
        log.info("user/info unavailable: errcode=%s", exc.errcode)
    visits = store.share_visits(store.get_db(), current_user.person_id)
    return render_template("auth/me.html", user=current_user, follows=follows, visits=visits)
