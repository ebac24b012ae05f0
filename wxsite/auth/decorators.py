"""``wechat_required`` and ``account_required``: who may see a page, and what happens if not."""

import functools

from flask import current_app, redirect, render_template, request, session, url_for
from flask_login import current_user

from ..errors import error_response, wants_json
from ..store import get_db
from .profile import refresh_silently
from ..wechat import protocol


def in_wechat():
    """Return True inside WeChat's browser (or anywhere in emulator mode)."""
    # Emulator mode goes straight to authorization in any browser instead of showing the
    # QR page with a button: the emulator's own page (pick a fake user, allow or refuse)
    # already is that step, and a developer gets the same hops a phone does.
    ua = request._get_current_object().environ.get("HTTP_USER_AGENT", "")  # the header
    return "MicroMessenger" in ua or current_app._get_current_object().config["WX_EMULATOR"]


def login_redirect(scope=protocol.SCOPE_BASE, next_path=None):
    """Send the visitor into authorization, or show 'open in WeChat' outside it."""
    next_path = next_path or request.full_path.rstrip("?")
    if request.method != "GET" or wants_json():
        return error_response(401, "请先登录", "请在微信中重新打开页面。", code="login_required")
    if not in_wechat():
        return open_in_wechat()
    return redirect(url_for("auth.login", next=next_path, scope=scope))


def open_in_wechat(page_url=None, next_path=None):
    """Render the page that asks people to scan the page's URL with WeChat.

    It also offers the desktop login by scanning, which comes back to ``next_path``.
    """
    import segno

    page_url = page_url or request.url
    qr = segno.make(page_url, error="m").svg_inline(scale=5, dark="#111", border=2)
    scan = url_for("auth.scan_desktop", next=next_path or request.full_path.rstrip("?"))
    return render_template("auth/open_in_wechat.html", qr=qr, page_url=page_url, scan=scan), 200


def wechat_required(view=None, *, scope=protocol.SCOPE_BASE):
    """Require a WeChat identity; with ``scope="snsapi_userinfo"`` also a fresh profile.

    Usable bare (``@wechat_required``) or with arguments.
    """
    if view is None:
        return functools.partial(wechat_required, scope=scope)

    @functools.wraps(view)
    def wrapped(*args, **kwargs):
        user = current_user._get_current_object()  # one look-up, not one per attribute
        if not user.is_authenticated:
            return login_redirect(scope)
        if (
            scope == protocol.SCOPE_USERINFO
            and not user.profile_fresh
            and not session.get("userinfo_declined")
            and request.method == "GET"
            and not refresh_silently(get_db(), user.row)
        ):
            # Escalate once; a refusal or 48001 sets userinfo_declined so we never loop.
            return login_redirect(protocol.SCOPE_USERINFO)
        return view(*args, **kwargs)

    return wrapped


def account_required(view):
    """Require a WeChat identity bound to a site account (else: the bind page)."""

    @functools.wraps(view)
    @wechat_required
    def wrapped(*args, **kwargs):
        if current_user.account_id is None:
            if request.method != "GET" or wants_json():
                return error_response(
                    403,
                    "请先绑定账号",
                    "在「我的资料」里绑定本站账号后再试。",
                    code="bind_required",
                )
            return redirect(url_for("auth.bind", next=request.full_path.rstrip("?")))
        return view(*args, **kwargs)

    return wrapped
