"""Parametric QR codes: cgi-bin/qrcode/create, showqrcode, and scanning them as a fake user."""

import io

import segno
from flask import Blueprint, Response, abort, redirect, render_template, request, url_for

from .pushes import send_event
from .state import (
    DATA_FORMAT_ERROR,
    INVALID_ACTION_INFO,
    INVALID_ARGS,
    QR_DEFAULT_EXPIRY,
    QR_MAX_EXPIRY,
    QR_PERMANENT,
    QR_TEMPORARY,
    QRCODE_CREATE,
    SHOWQRCODE,
    ApiError,
)
from .web import bad_request, external_url, request_json, state, wx_json

bp = Blueprint("qrcodes", __name__)

#: EventKey prefix of a subscribe that came through a parametric code.
QRSCENE_PREFIX = "qrscene_"
_INT32_MAX = 2**32 - 1
_LIMIT_SCENE_MAX = 100_000


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def parse_request(data):
    """Return (action_name, scene_id, scene_str, expire_seconds) or raise WeChat's ApiError."""
    action = data.get("action_name")
    if action not in QR_TEMPORARY + QR_PERMANENT:
        raise ApiError(INVALID_ARGS, "invalid action name")
    info = data.get("action_info")
    scene = info.get("scene") if isinstance(info, dict) else None
    if not isinstance(scene, dict):
        raise ApiError(INVALID_ACTION_INFO)
    scene_id = scene_str = None
    if action.endswith("STR_SCENE"):
        scene_str = scene.get("scene_str")
        if not isinstance(scene_str, str) or not 1 <= len(scene_str) <= 64:
            raise ApiError(INVALID_ACTION_INFO)
    else:
        scene_id = scene.get("scene_id")
        high = _INT32_MAX if action == "QR_SCENE" else _LIMIT_SCENE_MAX
        if not _is_int(scene_id) or not 1 <= scene_id <= high:
            raise ApiError(INVALID_ACTION_INFO)
    expire = None
    if action in QR_TEMPORARY:
        expire = data.get("expire_seconds", QR_DEFAULT_EXPIRY)
        if not _is_int(expire):
            raise ApiError(DATA_FORMAT_ERROR)
        if expire < 1:
            raise ApiError(INVALID_ARGS)
        # WeChat caps a temporary code's life at 30 days rather than refusing more.
        expire = min(expire, QR_MAX_EXPIRY)
    return action, scene_id, scene_str, expire


def create(appid, data):
    """Make a QR code for *appid* from a qrcode/create body; return WeChat's answer."""
    qr = state().create_qrcode(appid, *parse_request(data))
    body = {"ticket": qr.ticket}
    if qr.expires_at is not None:
        body["expire_seconds"] = round(qr.expires_at - qr.created_at)
    body["url"] = external_url("qrcodes.scan_page", code=qr.code)
    return body


@bp.post(QRCODE_CREATE)
def qrcode_create():
    """Create a parametric QR code ticket (global access_token)."""
    emu = state()
    appid = emu.token_appid(request.args.get("access_token"))
    data = request.get_json(force=True, silent=True)
    if not isinstance(data, dict):
        raise ApiError(DATA_FORMAT_ERROR)
    return wx_json(create(appid, data))


def qr_png(text, scale=5):
    """Return a PNG of a QR code that says *text*."""
    out = io.BytesIO()
    segno.make(text, error="m").save(out, kind="png", scale=scale, border=2)
    return out.getvalue()


@bp.get(SHOWQRCODE)
def showqrcode():
    """Serve the image of a ticket's code (no token needed, as on mp.weixin.qq.com)."""
    emu = state()
    qr = emu.qrcode(ticket=request.args.get("ticket", ""))
    if qr is None or qr.expired(emu.now()):
        return Response("invalid ticket", 404, content_type="text/plain; charset=utf-8")
    png = qr_png(external_url("qrcodes.scan_page", code=qr.code))
    response = Response(png, content_type="image/png")
    response.cache_control.max_age = 60
    return response


def scan(ticket, user):
    """Scan a code as *user*: SCAN for a follower, else subscribe with qrscene_ (who then follows).

    Return (result dict, None) or (None, error message).
    """
    emu = state()
    qr = emu.qrcode(ticket=ticket)
    if qr is None:
        return None, "unknown ticket"
    if qr.expired(emu.now()):
        return None, "ticket expired"
    if user not in emu.users:
        return None, f"user must be one of {list(emu.users)}"
    if emu.follow(user, qr.appid, qr):
        event, key = "subscribe", QRSCENE_PREFIX + qr.scene
    else:
        event, key = "SCAN", qr.scene
    delivery = send_event(qr.appid, user, event=event, event_key=key, ticket=qr.ticket)
    result = {
        "appid": qr.appid,
        "user": user,
        "event": event,
        "event_key": key,
        "follows": True,
        "delivery": delivery.describe() if delivery else None,
    }
    return result, None


@bp.get("/_emu/qrcode")
def list_qrcodes():
    """Return every QR code made, oldest first."""
    return wx_json(state().describe_qrcodes())


@bp.post("/_emu/qrcode")
def make_qrcode():
    """Make a QR code without a token (``appid`` + qrcode/create's body)."""
    data = request_json()
    appid = data.get("appid")
    if appid not in state().accounts:
        return bad_request(f"appid must be one of {list(state().accounts)}")
    try:
        return wx_json(create(appid, data))
    except ApiError as error:
        return bad_request(f"{error.errcode} {error.errmsg}")


@bp.post("/_emu/qrcode/scan")
def scan_control():
    """Scan a ticket as a fake user (``ticket``, ``user``)."""
    data = request_json()
    result, error = scan(data.get("ticket"), data.get("user"))
    if error:
        return bad_request(error)
    return wx_json(result)


# -- the page a code's url opens: "scan this code as …" ---------------------------------


@bp.get("/_emu/q/<code>")
def scan_page(code):
    """Show who may scan this code (the emulator's stand-in for the camera)."""
    emu = state()
    qr = emu.qrcode(code=code)
    if qr is None:
        abort(404)
    return render_template(
        "scan.html",
        qr=qr,
        expired=qr.expired(emu.now()),
        users=emu.describe_users(),
        image=url_for("qrcodes.showqrcode", ticket=qr.ticket),
    )


@bp.post("/_emu/q/<code>")
def scan_form(code):
    """Scan the code as the user the form names, then say what was pushed."""
    emu = state()
    qr = emu.qrcode(code=code)
    if qr is None:
        abort(404)
    result, error = scan(qr.ticket, request.form.get("user", ""))
    if error:
        return redirect(url_for("control.index", notice=error, _anchor="qrcodes"), 303)
    delivery = result["delivery"]
    pushed = f"push #{delivery['id']}" if delivery else "push is off for this account"
    notice = f"{result['user']} scanned: {result['event']} {result['event_key']} ({pushed})"
    return redirect(url_for("control.index", notice=notice, _anchor="pushes"), 303)
