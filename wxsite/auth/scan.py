"""Desktop login by scanning (``/auth/scan``): the desktop shows a QR code of a one-time
link, the phone opens it in WeChat, logs in and confirms, the desktop continues as that
person.

The ticket is single-use, lives two minutes, and only the desktop browser that asked for it
can redeem it: the ticket is in the QR code (anyone may see it), but redeeming also needs a
secret kept in that browser's session, of which the database holds only a hash. The phone
decides with a POST carrying its CSRF token, never with a GET.

Follow to log in (when server push is on): the page also shows a temporary parametric QR
code (``qrcode/create``, scene ``login_…``). Scanning it makes WeChat push SCAN or
subscribe; that marks the ticket scanned by that openid and answers with the confirm link,
which only that person may then confirm. The scan alone never logs the desktop in: whoever
scans a code shown on someone else's screen would otherwise log that screen in as themselves.
"""

import hashlib
import logging
import re

from authlib.common.security import generate_token
from flask import abort, jsonify, redirect, render_template, request, session, url_for
from flask_login import current_user

from .. import clock, store, wx
from ..errors import error_response
from ..wechat import WeChatError
from .decorators import wechat_required
from .nexturl import next_url, safe_next
from .views import bp, start_session

log = logging.getLogger("wxsite.auth")
#: Seconds a QR code can be scanned and confirmed, and then be redeemed by its desktop.
LIFETIME = 120
#: Codes one IP address may ask for per 10 minutes (each keeps a row for a day).
CODES_PER_IP = 60
TICKET_RE = re.compile(r"[A-Za-z0-9]{32}")
#: The scenes of follow-to-log-in codes (QR_STR_SCENE allows 64 characters).
SCENE_PREFIX = "login_"


def _browser_key():
    secret = session.get("scan_secret")
    return hashlib.sha256(secret.encode()).hexdigest() if secret else None


def _desktop():
    """Describe the asking browser in a few words the phone's owner recognises."""
    ua = request.headers.get("User-Agent", "")
    browser = next(
        (
            n
            for k, n in (
                ("Edg/", "Edge"),
                ("Firefox/", "Firefox"),
                ("Chrome/", "Chrome"),
                ("Safari/", "Safari"),
            )
            if k in ua
        ),
        "浏览器",
    )
    system = next(
        (
            n
            for k, n in (("Windows", "Windows"), ("Mac OS X", "macOS"), ("Linux", "Linux"))
            if k in ua
        ),
        "电脑",
    )
    return f"{system} 上的 {browser}"


def _ticket_or_404(ticket):
    row = store.get_scan(store.get_db(), ticket) if TICKET_RE.fullmatch(ticket) else None
    if row is None:
        return None, error_response(404, "二维码无效", "请在电脑上刷新二维码后重新扫描。")
    return row, None


@bp.get("/auth/scan")
def scan_desktop():
    """Show a fresh one-time QR code; the page then waits for the phone's answer."""
    import segno

    next_path = safe_next(request.args.get("next"))
    if current_user.is_authenticated:
        return redirect(next_url(next_path))
    db = store.get_db()
    limit = {f"scan-start:{request.remote_addr}": CODES_PER_IP}
    if store.take_attempt(db, limit, 600):
        return error_response(429, "操作太频繁", "请稍后再刷新二维码。", code="too_many_codes")
    ticket = generate_token(32)
    # One secret per browser session, kept until the login clears it: a second tab (or
    # 刷新二维码, then Back) must not turn the first tab's code into another browser's.
    session.setdefault("scan_secret", generate_token(32))
    session["scan_next"] = next_path
    scene, follow_url = _follow_code()
    store.create_scan(db, ticket, _browser_key(), _desktop(), LIFETIME, scene=scene)
    phone_url = url_for("auth.scan_phone", ticket=ticket, _external=True)
    qr = segno.make(phone_url, error="m").svg_inline(scale=5, dark="#111", border=2)
    follow_qr = None
    if follow_url:
        follow_qr = segno.make(follow_url, error="m").svg_inline(scale=5, dark="#111", border=2)
    return render_template(
        "auth/scan_desktop.html",
        qr=qr,
        follow_qr=follow_qr,
        status_url=url_for("auth.scan_status", ticket=ticket),
        again_url=url_for("auth.scan_desktop", next=next_path),
        lifetime=LIFETIME,
        phone_url=phone_url,
    )


def _follow_code():
    """Return ``(scene, url)`` of a new follow-to-log-in code, or (None, None) without one."""
    if wx.push_receiver() is None:
        return None, None  # no push: WeChat could not tell the site who scanned
    scene = SCENE_PREFIX + generate_token(24)
    try:
        _, url = wx.client().create_temporary_qrcode(scene, LIFETIME)
    except WeChatError as exc:
        log.warning("follow-to-log-in code not made, the link code only: %s", exc)
        return None, None
    return scene, url


def follow_scanned(db, scene, openid):
    """A push says ``openid`` scanned ``scene``: mark its ticket scanned; return the passive
    reply (the confirm link), or None (not a login scene, unknown, expired or taken)."""
    if not scene.startswith(SCENE_PREFIX):
        return None
    ticket = store.scan_by_scene(db, scene, openid)
    if ticket is None:
        return None
    link = url_for("auth.scan_phone", ticket=ticket, _external=True)
    return f'<a href="{link}">点此确认在电脑上登录</a>'


@bp.get("/auth/scan/<ticket>/status")
def scan_status(ticket):
    """Answer the waiting desktop page (JSON); a confirmed ticket logs this browser in, once."""
    row, missing = _ticket_or_404(ticket)
    if missing:
        return jsonify({"state": "unknown"}), 404
    key = _browser_key()
    if key is None or row["browser_key"] != key:
        return jsonify({"state": "forbidden"}), 403  # another browser's code
    now = clock.now()
    if row["state"] == store.scan.CONFIRMED:
        user_id = store.redeem_scan(store.get_db(), ticket, key, LIFETIME, now=now)
        if user_id:
            next_path = session.get("scan_next", "/")
            start_session(user_id)
            return jsonify({"state": "done", "next": next_url(next_path)})
        if row["decided_at"] <= now - LIFETIME:
            return jsonify({"state": "expired"})  # confirmed, but not redeemed in time
    if row["state"] in (store.scan.PENDING, store.scan.SCANNED) and row["expires_at"] <= now:
        return jsonify({"state": "expired"})
    return jsonify({"state": row["state"]})


@bp.get("/auth/scan/<ticket>")
@wechat_required
def scan_phone(ticket):
    """On the phone (in WeChat, logged in silently): ask whether to log the desktop in."""
    row, missing = _ticket_or_404(ticket)
    if missing:
        return missing
    usable = _decidable(row) and row["expires_at"] > clock.now()
    return render_template(
        "auth/scan_phone.html",
        row=row,
        usable=usable,
        asked_at=clock.china_time(row["created_at"], "%H:%M"),
    )


@bp.post("/auth/scan/<ticket>/<decision>")
@wechat_required
def scan_decide(ticket, decision):
    """Confirm or cancel from the phone (POST with CSRF); a ticket is decided only once."""
    if decision not in ("confirm", "cancel"):
        abort(404)
    row, missing = _ticket_or_404(ticket)
    if missing:
        return missing
    state = store.scan.CONFIRMED if decision == "confirm" else store.scan.CANCELLED
    decided = store.decide_scan(
        store.get_db(), ticket, state, current_user.wechat_user_id, current_user.openid
    )
    if not decided:
        return error_response(
            409,
            "二维码已失效",
            "这个二维码已被使用、已取消或已过期，请在电脑上刷新后重新扫描。",
            code="scan_used",
        )
    log.info("desktop login by scanning: %s", decision)
    return render_template("auth/scan_decided.html", confirmed=decision == "confirm")


def _decidable(row):
    """True if this phone may decide the ticket: pending, or scanned by this very person."""
    if row["state"] == store.scan.SCANNED:
        return row["scanned_openid"] == current_user.openid
    return row["state"] == store.scan.PENDING
