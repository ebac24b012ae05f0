"""Web authorization: the strict authorize link, the user picker and consent page."""

import re
from dataclasses import dataclass
from urllib.parse import unquote, urlencode, urlsplit, urlunsplit

from flask import Blueprint, current_app, redirect, render_template, request

from . import wechat_facts as facts
from .web import external_url, state

bp = Blueprint("oauth", __name__)

#: Cookie naming the fake user "holding the phone"; wxemu_ keeps clear of the site's own.
USER_COOKIE = "wxemu_user"
#: Cookie set when the user "entered from the account's menu" (silent snsapi_userinfo).
FROM_MENU_COOKIE = "wxemu_from_menu"
_COOKIE_AGE = 30 * 24 * 3600

_KEYS = ("appid", "redirect_uri", "response_type", "scope", "state", "connect_redirect")
_REQUIRED = _KEYS[:4]
# Characters an encoded redirect_uri never contains raw ("=" too: it must be %3D).
_UNENCODED = re.compile(r"[/:?=#\s]")


class AuthLinkError(Exception):
    """A malformed authorization link; shown as WeChat's error page."""

    def __init__(self, zh, en, code=None):
        super().__init__(f"{zh} / {en}")
        self.zh, self.en, self.code = zh, en, code


@dataclass
class AuthRequest:
    """A checked authorization request."""

    appid: str
    redirect_uri: str
    scope: str
    state: str | None = None
    connect_redirect: bool = False

    def form_fields(self):
        """Return the hidden fields that carry this request through the picker form."""
        fields = {
            "appid": self.appid,
            "redirect_uri": self.redirect_uri,
            "response_type": "code",
            "scope": self.scope,
        }
        if self.state is not None:
            fields["state"] = self.state
        if self.connect_redirect:
            fields["connect_redirect"] = "1"
        return fields


def parse_raw_query(raw, accounts, domains=None):
    """Check an authorize query string as strictly as WeChat; return an AuthRequest."""
    if not raw:
        raise AuthLinkError("缺少参数", "the authorization link has no parameters")
    pairs = [p.partition("=")[::2] for p in raw.split("&")]
    keys = [k for k, _ in pairs]
    for key in keys:
        if key not in _KEYS:
            raise AuthLinkError(f"多余的参数 {key}", f"unexpected parameter {key!r}")
        if keys.count(key) > 1:
            raise AuthLinkError(f"重复的参数 {key}", f"duplicate parameter {key!r}")
    values = dict(pairs)
    if "appid" not in values:
        raise AuthLinkError("appid 不能为空", "appid is missing", 10012)
    if "redirect_uri" not in values:
        raise AuthLinkError("redirect_uri 不能为空", "redirect_uri is missing", 10011)
    if "response_type" not in values:
        raise AuthLinkError("response_type 参数错误", "response_type is missing")
    if "scope" not in values:
        raise AuthLinkError("scope 不能为空", "scope is missing", 10010)
    if keys != [k for k in _KEYS if k in values]:
        raise AuthLinkError(
            "参数顺序错误",
            "parameters out of order: appid, redirect_uri, response_type, scope, state"
            " (then connect_redirect) are required in exactly this order",
        )
    raw_uri = values["redirect_uri"]
    if raw_uri and (
        not raw_uri.lower().startswith(("http%3a", "https%3a")) or _UNENCODED.search(raw_uri)
    ):
        raise AuthLinkError(
            "redirect_uri 参数错误",
            "redirect_uri must be URL-encoded (e.g. https%3A%2F%2Fexample.com%2Fcb)",
        )
    return check_values(
        accounts,
        domains,
        appid=values["appid"],
        redirect_uri=unquote(raw_uri),
        response_type=values["response_type"],
        scope=values["scope"],
        state=values.get("state"),
        connect_redirect=values.get("connect_redirect"),
    )


def check_values(
    accounts, domains, appid, redirect_uri, response_type, scope, state, connect_redirect
):
    """Check decoded authorization parameters; return an AuthRequest or raise."""
    if not appid:
        raise AuthLinkError("appid 不能为空", "appid is missing", 10012)
    if appid not in accounts:
        raise AuthLinkError("appid 参数错误", f"unknown appid {appid!r}")
    if not redirect_uri:
        raise AuthLinkError("redirect_uri 不能为空", "redirect_uri is missing", 10011)
    parts = urlsplit(redirect_uri)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise AuthLinkError("redirect_uri 参数错误", "redirect_uri must be an absolute http(s) URL")
    if domains and parts.hostname not in domains and parts.netloc not in domains:
        raise AuthLinkError(
            "redirect_uri 域名与后台配置不一致",
            f"redirect_uri host {parts.netloc!r} is not an authorized domain",
            10003,
        )
    if response_type != "code":
        raise AuthLinkError("response_type 参数错误", "response_type must be code")
    if not scope:
        raise AuthLinkError("scope 不能为空", "scope is missing", 10010)
    if scope not in facts.SCOPES:
        raise AuthLinkError(
            "scope 参数错误或没有 scope 权限",
            f"invalid scope {scope!r} (snsapi_base or snsapi_userinfo)",
            10005,
        )
    if state is not None and not re.fullmatch(facts.STATE_PATTERN, state):
        raise AuthLinkError("state 参数错误", "state must be 1 to 128 letters or digits")
    if connect_redirect not in (None, "1"):
        raise AuthLinkError("connect_redirect 参数错误", "connect_redirect must be 1")
    return AuthRequest(appid, redirect_uri, scope, state, connect_redirect == "1")


def callback_url(auth, code=None):
    """Return redirect_uri with code (if any) and state appended, before any fragment."""
    params = {}
    if code is not None:
        params["code"] = code
    if auth.state is not None:
        params["state"] = auth.state
    parts = urlsplit(auth.redirect_uri)
    extra = urlencode(params)
    query = "&".join(q for q in (parts.query, extra) if q)
    return urlunsplit(parts._replace(query=query))


def _error_page(error):
    return render_template("error.html", error=error), 400


def _settings():
    accounts = state().accounts
    return accounts, current_app.config.get("EMU_AUTH_DOMAINS")


def _account_name(appid):
    names = current_app.config.get("EMU_ACCOUNT_NAMES") or {}
    return names.get(appid) or f"公众号 {appid}"


def _user_rows(appid):
    emu = state()
    return [
        {
            "key": u.key,
            "nickname": u.nickname,
            "avatar": external_url("control.avatar", key=u.key),
            "follows": emu.follow_time(u.key, appid) is not None,
        }
        for u in emu.users.values()
    ]


def _approve(auth, user, snapshot=False):
    emu = state()
    if auth.scope == facts.SCOPE_USERINFO:
        # An armed snapshot is spent by this authorization, whichever way it was asked for.
        snapshot = emu.take_snapshot(user, auth.appid) or snapshot
    else:
        snapshot = False
    code = emu.issue_code(auth.appid, user, auth.scope, snapshot)
    return redirect(callback_url(auth, code), 302)


@bp.get(facts.AUTHORIZE)
def authorize():
    """Check the link, then authorize silently or show the picker / consent page."""
    raw = request.query_string.decode("latin-1")
    try:
        auth = parse_raw_query(raw, *_settings())
    except AuthLinkError as error:
        return _error_page(error)
    emu = state()
    user = request.cookies.get(USER_COOKIE)
    if user not in emu.users:
        user = None
    from_menu = request.cookies.get(FROM_MENU_COOKIE) == "1"
    if user is not None:
        following = emu.follow_time(user, auth.appid) is not None
        if auth.scope == facts.SCOPE_BASE or (following and from_menu):
            return _approve(auth, user)
        if emu.snapshot_armed(user, auth.appid):
            # Snapshot-page mode: WeChat opens the page at once, no consent asked.
            return _approve(auth, user)
    return render_template(
        "authorize.html",
        auth=auth,
        account_name=_account_name(auth.appid),
        users=_user_rows(auth.appid),
        selected=user,
        from_menu=from_menu,
        switch_url=f"{facts.AUTHORIZE}/switch?{raw}",
    )


@bp.get(f"{facts.AUTHORIZE}/switch")
def switch_user():
    """Forget who holds the phone and show the picker for the same link again."""
    raw = request.query_string.decode("latin-1")
    response = redirect(f"{facts.AUTHORIZE}?{raw}#wechat_redirect", 302)
    response.delete_cookie(USER_COOKIE, path="/")
    return response


@bp.post(f"{facts.AUTHORIZE}/confirm")
def confirm():
    """Take the picker's answer: remember the user, then allow (code) or deny."""
    form = request.form
    try:
        auth = check_values(
            *_settings(),
            appid=form.get("appid", ""),
            redirect_uri=form.get("redirect_uri", ""),
            response_type=form.get("response_type", ""),
            scope=form.get("scope", ""),
            state=form.get("state"),
            connect_redirect=form.get("connect_redirect"),
        )
    except AuthLinkError as error:
        return _error_page(error)
    user = form.get("user", "")
    action = form.get("action", "")
    if user not in state().users:
        return _error_page(AuthLinkError("请选择用户", f"unknown user {user!r}"))
    if action not in ("allow", "deny", "snapshot"):
        return _error_page(AuthLinkError("参数错误", "action must be allow, deny or snapshot"))
    if action == "snapshot" and auth.scope != facts.SCOPE_USERINFO:
        return _error_page(AuthLinkError("参数错误", "a snapshot page is for snsapi_userinfo"))
    if action in ("allow", "snapshot"):
        response = _approve(auth, user, snapshot=action == "snapshot")
    else:
        response = redirect(callback_url(auth), 302)
    response.set_cookie(USER_COOKIE, user, max_age=_COOKIE_AGE, samesite="Lax", httponly=True)
    if form.get("from_menu") == "1":
        response.set_cookie(
            FROM_MENU_COOKIE, "1", max_age=_COOKIE_AGE, samesite="Lax", httponly=True
        )
    else:
        response.delete_cookie(FROM_MENU_COOKIE, path="/")
    return response
