"""The control API under /_emu: how tests drive the emulator (JSON in, JSON out)."""

import math

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    redirect,
    render_template,
    request,
    url_for,
)


from . import media as media_bytes
from . import pushes, qrcodes
from .api import store_upload
from .state import FAULT_PATHS, MEDIA_PATHS, ApiError, Fault, voice_media
from .users import avatar_svg
from .web import bad_request, external_url, request_json, state, wx_json

bp = Blueprint("control", __name__, url_prefix="/_emu")

_FAULT_KINDS = ("errcode", "status", "body")
_SHAPES = ("drip", "chunked", "size")
#: Largest media answer a ``size`` fault makes up (generated lazily, never held in memory).
_MAX_SIZE = 1 << 30
_EVENT_FIELDS = ("api", "args", "url", "ok", "errMsg", "result")


@bp.get("/counters")
def counters():
    """Return calls per WeChat path since the last reset."""
    return wx_json(state().describe_counters())


@bp.delete("/counters")
def reset_counters():
    """Set every counter to zero."""
    state().reset_counters()
    return wx_json(state().describe_counters())


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value):
    return (_is_int(value) or isinstance(value, float)) and math.isfinite(value)


def _parse_fault(data):
    """Return a Fault from the control API's JSON, or an error message."""
    path = data.get("path")
    if path not in FAULT_PATHS:
        return f"path must be one of {', '.join(FAULT_PATHS)}"
    count = data.get("count", 1)
    if not _is_int(count) or (count < 1 and count != -1):
        return "count must be a positive integer, or -1 for until cleared"
    kinds = [k for k in _FAULT_KINDS if data.get(k) is not None]
    stall = data.get("stall")
    if len(kinds) > 1:
        return "give only one of errcode, status, body (stall and the body shapes may go with any)"
    shaping = [k for k in _SHAPES if data.get(k) is not None and data.get(k) is not False]
    if not kinds and stall is None and not shaping and data.get("drip_bytes") is None:
        return f"give one of errcode, status, stall, body, {', '.join(_SHAPES)}"
    if stall is not None and (not _is_number(stall) or not 0 <= stall <= 600):
        return "stall must be a number of seconds between 0 and 600"
    errcode, status, body = (data.get(k) for k in _FAULT_KINDS)
    if errcode is not None and not _is_int(errcode):
        return "errcode must be an integer"
    if status is not None and (not _is_int(status) or not 400 <= status <= 599):
        return "status must be an HTTP error status (400-599)"
    if body is not None and not isinstance(body, str):
        return "body must be a string"
    content_type = data.get("content_type", "application/json")
    errmsg = data.get("errmsg")
    if not isinstance(content_type, str) or not isinstance(errmsg, (str, type(None))):
        return "content_type and errmsg must be strings"
    shape = _parse_shape(data, path)
    if isinstance(shape, str):
        return shape
    return Fault(path, count, errcode, errmsg, status, stall, body, content_type, **shape)


def _parse_shape(data, path):
    """Return the body-shaping fields of a fault as keyword arguments, or an error message."""
    drip, drip_bytes = data.get("drip"), data.get("drip_bytes")
    chunked, size = data.get("chunked", False), data.get("size")
    if drip is not None and (not _is_number(drip) or not 0 < drip <= 60):
        return "drip must be a number of seconds between pieces, above 0 and at most 60"
    if drip_bytes is not None and (drip is None or not _is_int(drip_bytes) or drip_bytes < 1):
        return "drip_bytes must be a positive integer, and goes with drip"
    if not isinstance(chunked, bool):
        return "chunked must be true or false"
    if size is not None and (not _is_int(size) or not 0 <= size <= _MAX_SIZE):
        return f"size must be a number of bytes between 0 and {_MAX_SIZE}"
    if size is not None and path not in MEDIA_PATHS:
        return f"size goes only with {', '.join(MEDIA_PATHS)}"
    return {"drip": drip, "drip_bytes": drip_bytes or 1, "chunked": chunked, "size": size}


@bp.post("/faults")
def add_fault():
    """Queue a fault for the next ``count`` calls of a path."""
    fault = _parse_fault(request_json())
    if isinstance(fault, str):
        return bad_request(fault)
    emu = state()
    emu.add_fault(fault)
    return wx_json(emu.describe_faults())


@bp.get("/faults")
def list_faults():
    """Return the queued faults in the order they will apply."""
    return wx_json(state().describe_faults())


@bp.delete("/faults")
def clear_faults():
    """Drop every queued fault."""
    state().clear_faults()
    return wx_json([])


@bp.get("/deliveries")
def deliveries():
    """Return how far each answer shaped by a fault (drip, chunked, size) got, oldest first."""
    return wx_json(state().describe_deliveries())


@bp.delete("/deliveries")
def clear_deliveries():
    """Forget the shaped answers."""
    state().clear_deliveries()
    return wx_json([])


@bp.get("/clock")
def clock():
    """Return the emulator's time and its offset from the wall clock."""
    return wx_json(state().set_clock())


@bp.post("/clock")
def set_clock():
    """Advance the clock, or set its offset, by JSON ``advance`` / ``offset`` seconds."""
    data = request_json()
    advance, offset = data.get("advance"), data.get("offset")
    if advance is None and offset is None:
        return bad_request("give advance or offset (seconds)")
    if any(v is not None and not _is_number(v) for v in (advance, offset)):
        return bad_request("advance and offset must be numbers")
    return wx_json(state().set_clock(advance=advance, offset=offset))


@bp.post("/reset")
def reset():
    """Forget every token, ticket, code, media, fault, counter, event, clock change and payment."""
    state().reset()
    current_app.extensions["wxemu.pay"].reset()
    pushes.push_state().reset()
    return wx_json({"ok": True})


@bp.get("/users")
def users():
    """List the fake users with their ids and the appids they follow."""
    return wx_json(state().describe_users())


@bp.post("/users/<key>")
def update_user(key):
    """Change which appids user *key* follows (JSON ``follows``), pushing (un)subscribe."""
    emu = state()
    if key not in emu.users:
        abort(404)
    follows = request_json().get("follows")
    if not isinstance(follows, list) or any(a not in emu.accounts for a in follows):
        return bad_request(f"follows must be a list of appids among {list(emu.accounts)}")
    added, removed = emu.set_follows(key, follows)
    sent = pushes.follow_pushes(key, added, removed)
    user = next(u for u in emu.describe_users() if u["key"] == key)
    return wx_json({**user, "pushes": [d.describe() for d in sent]})


@bp.get("/snapshot")
def snapshots():
    """Return the users whose next snsapi_userinfo authorization is a snapshot one."""
    return wx_json(state().describe_snapshots())


@bp.post("/snapshot")
def arm_snapshot():
    """Make a user's next snsapi_userinfo authorization (``appid`` or any) a snapshot page."""
    emu = state()
    data = request_json()
    user, appid = data.get("user"), data.get("appid")
    if user not in emu.users:
        return bad_request(f"user must be one of {list(emu.users)}")
    if appid is not None and appid not in emu.accounts:
        return bad_request(f"appid must be one of {list(emu.accounts)}")
    emu.arm_snapshot(user, appid)
    return wx_json({"user": user, "appid": appid, "armed": True})


@bp.post("/tokens/revoke")
def revoke_tokens():
    """Invalidate every current global access_token of an appid, as a rival fetch would."""
    emu = state()
    appid = request_json().get("appid")
    if appid not in emu.accounts:
        return bad_request(f"appid must be one of {list(emu.accounts)}")
    return wx_json({"revoked": emu.revoke_tokens(appid)})


def _flag(name):
    return request.args.get(name, "") in ("1", "true", "yes")


@bp.post("/media")
def add_media():
    """Keep the raw request body as media (``?type=image|voice``, ``appid``, ``speex=1``)."""
    kind = request.args.get("type", "image")
    appid = request.args.get("appid") or None
    if kind not in ("image", "voice"):
        return bad_request("type must be image or voice")
    if appid is not None and appid not in state().accounts:
        return bad_request("unknown appid")
    data = request.get_data(cache=False)
    if not data:
        return bad_request("send the media bytes as the request body")
    if _flag("speex"):
        if kind != "voice":
            return bad_request("speex=1 goes with type=voice")
        # The body is the HD voice; the AMR copy is silence of the same length.
        duration = media_bytes.speex_duration_ms(data) or 1000
        amr, duration = voice_media(duration)
        media_id, created_at = store_upload("voice", amr, "audio/amr", appid, duration, data)
    else:
        media_id, created_at = store_upload(kind, data, request.mimetype, appid)
    return wx_json({"media_id": media_id, "type": kind, "created_at": int(created_at)})


@bp.post("/media/<media_id>/speex")
def attach_speex(media_id):
    """Make a voice's media/get/jssdk answer the raw request body, as is."""
    data = request.get_data(cache=False)
    if not data:
        return bad_request("send the speex bytes as the request body")
    try:
        item = state().attach_speex(media_id, data)
    except ApiError:
        return bad_request("no such voice media")
    return wx_json({"media_id": item.media_id, "type": item.kind, "speex_bytes": len(data)})


@bp.route("/speex", methods=["GET", "POST"])
def speex_mode():
    """Read or set (``{"real": bool}``) whether made-up HD voice is real speex."""
    emu = state()
    if request.method == "POST":
        real = request_json().get("real")
        if not isinstance(real, bool):
            return bad_request("real must be true or false")
        with emu.lock:
            emu.real_speex = real
    return wx_json({"real": emu.real_speex})


@bp.get("/events")
def events():
    """Return what the fake JS-SDK recorded, oldest first."""
    return wx_json(state().list_events())


@bp.post("/events")
def add_event():
    """Record one fake JS-SDK call (posted by the script itself)."""
    data = request_json()
    if not isinstance(data.get("api"), str):
        return bad_request("an event needs an api name")
    event = {k: data[k] for k in _EVENT_FIELDS if k in data}
    return wx_json(state().add_event(event))


@bp.delete("/events")
def clear_events():
    """Forget the recorded JS-SDK events."""
    state().clear_events()
    return wx_json([])


@bp.get("/avatar/<key>.svg")
def avatar(key):
    """Serve a fake user's avatar (their headimgurl)."""
    user = state().users.get(key)
    if user is None:
        abort(404)
    response = Response(avatar_svg(user), content_type="image/svg+xml; charset=utf-8")
    response.cache_control.max_age = 3600
    return response


@bp.get("/")
def index():
    """Show what this emulator offers: accounts, users, push, QR codes, and where things are."""
    emu = state()
    now = emu.now()
    codes = [q for q in emu.describe_qrcodes() if not q["expired"]]
    for code in codes:
        qr = emu.qrcode(ticket=code["ticket"])
        code["page"] = url_for("qrcodes.scan_page", code=qr.code)
        code["left"] = None if qr.expires_at is None else int(qr.expires_at - now)
    return render_template(
        "index.html",
        accounts=list(emu.accounts),
        push=[pushes.describe_config(a) for a in emu.accounts],
        users=emu.describe_users(),
        avatars={u: external_url("control.avatar", key=u) for u in emu.users},
        jssdk_url=external_url("jssdk.script"),
        paths=FAULT_PATHS,
        qrcodes=codes,
        deliveries=pushes.push_state().describe_deliveries()[-10:][::-1],
        notice=request.args.get("notice"),
    )


# -- the home page's forms (plain HTML, no JavaScript) -----------------------------------


def _back(notice, anchor):
    return redirect(url_for("control.index", notice=notice, _anchor=anchor), 303)


def _form_user_and_appid():
    emu = state()
    user, appid = request.form.get("user", ""), request.form.get("appid", "")
    if user not in emu.users or appid not in emu.accounts:
        abort(400)
    return user, appid


def _pushed(delivery):
    if delivery is None:
        return "push is off for this account: nothing sent"
    outcome = "accepted" if delivery.accepted else "not accepted"
    return f"push #{delivery.id} {delivery.event or delivery.msg_type}: {outcome}"


@bp.post("/web/follow")
def web_follow():
    """Follow or unfollow an account as a user (the home page's buttons)."""
    user, appid = _form_user_and_appid()
    emu = state()
    if request.form.get("action") == "follow":
        changed = emu.follow(user, appid)
        sent = pushes.follow_pushes(user, [appid] if changed else [], [])
    else:
        changed = emu.unfollow(user, appid)
        sent = pushes.follow_pushes(user, [], [appid] if changed else [])
    if not changed:
        notice = "nothing changed"
    elif not sent:
        notice = "follow state changed; push is off for this account"
    else:
        notice = "; ".join(_pushed(d) for d in sent)
    return _back(notice, f"user-{user}")


@bp.post("/web/text")
def web_text():
    """Send a text message to an account as a user."""
    user, appid = _form_user_and_appid()
    content = request.form.get("content", "").strip() or "你好"
    delivery = pushes.send_event(appid, user, msg_type="text", content=content)
    return _back(_pushed(delivery), "pushes")


@bp.post("/web/qrcode")
def web_qrcode():
    """Make a temporary QR code with a scene string."""
    appid = request.form.get("appid", "")
    if appid not in state().accounts:
        abort(400)
    scene = request.form.get("scene", "").strip() or "emu"
    body = {
        "action_name": "QR_STR_SCENE",
        "expire_seconds": 600,
        "action_info": {"scene": {"scene_str": scene[:64]}},
    }
    qrcodes.create(appid, body)
    return _back(f"QR code for scene {scene[:64]!r} made (10 minutes)", "qrcodes")


@bp.post("/web/scan")
def web_scan():
    """Scan a QR code as a user."""
    result, error = qrcodes.scan(request.form.get("ticket", ""), request.form.get("user", ""))
    if error:
        return _back(error, "qrcodes")
    delivery = pushes.push_state().find(result["delivery"]["id"]) if result["delivery"] else None
    return _back(f"{result['event']} {result['event_key']}: " + _pushed(delivery), "pushes")


@bp.post("/web/verify")
def web_verify():
    """Do WeChat's URL check against an account's push URL."""
    appid = request.form.get("appid", "")
    config = pushes.push_state().config(appid) if appid in state().accounts else None
    if config is None:
        return _back("push is off for this account", "push")
    result = pushes.check_url(appid, config)
    outcome = (
        "echoed: OK" if result["ok"] else f"not echoed ({result['status'] or result['error']})"
    )
    return _back(f"URL check of {config.url}: {outcome}", "push")
