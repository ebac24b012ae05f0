"""WeChat's API endpoints: web-authorization (sns), global credentials, users, media."""

import weakref

from flask import Blueprint, Response, request

from . import wechat_facts as facts
from . import media as media_bytes
from .state import DATA_FORMAT_ERROR, INVALID_ARGS, ApiError
from .web import external_url, state, wx_json

bp = Blueprint("api", __name__)

_MEDIA_TYPES = ("image", "voice", "video", "thumb")
#: What sns/userinfo says about a snapshot page's virtual account.
SNAPSHOT_NICKNAME = "微信用户"
SNAPSHOT_AVATAR = "snapshot-avatar.svg"
_CHUNK = 64 * 1024


# -- web authorization -----------------------------------------------------------------


def _web_token_body(grant, refresh):
    emu = state()
    return {
        "access_token": grant.value,
        "expires_in": facts.TOKEN_LIFETIME,
        "refresh_token": refresh.value,
        "openid": emu.grant_openid(grant),
        "scope": grant.scope,
    }


@bp.get(facts.SNS_ACCESS_TOKEN)
def sns_access_token():
    """Exchange an authorization code for a web access_token."""
    args = request.args
    emu = state()
    emu.check_app(args.get("appid"), args.get("secret"), check_secret=True)
    if args.get("grant_type") != "authorization_code":
        raise ApiError(facts.INVALID_GRANT_TYPE)
    grant, refresh = emu.exchange_code(args["appid"], args.get("code"))
    body = _web_token_body(grant, refresh)
    unionid = emu.grant_unionid(grant)
    if unionid:
        body["unionid"] = unionid
    body["is_snapshotuser"] = 1 if grant.snapshot else 0
    return wx_json(body)


@bp.get(facts.SNS_REFRESH_TOKEN)
def sns_refresh_token():
    """Issue a new web access_token for a refresh_token (the old one keeps working)."""
    args = request.args
    emu = state()
    emu.check_app(args.get("appid"))
    if args.get("grant_type") != "refresh_token":
        raise ApiError(facts.INVALID_GRANT_TYPE)
    grant, refresh = emu.refresh_web_token(args["appid"], args.get("refresh_token"))
    return wx_json(_web_token_body(grant, refresh))


@bp.get(facts.SNS_USERINFO)
def sns_userinfo():
    """Return the profile of the user a snsapi_userinfo web token speaks for."""
    emu = state()
    grant = emu.web_grant(request.args.get("access_token"), request.args.get("openid"))
    if grant.scope != facts.SCOPE_USERINFO:
        raise ApiError(facts.API_UNAUTHORIZED)
    user = emu.users[grant.user]
    if grant.snapshot:
        # The snapshot page's virtual account: WeChat's placeholder name and grey avatar.
        nickname, avatar = SNAPSHOT_NICKNAME, external_url("static", filename=SNAPSHOT_AVATAR)
    else:
        nickname, avatar = user.nickname, external_url("control.avatar", key=user.key)
    # Since October 2021 WeChat returns no sex or region: zero and empty strings.
    body = {
        "openid": emu.grant_openid(grant),
        "nickname": nickname,
        "sex": 0,
        "province": "",
        "city": "",
        "country": "",
        "headimgurl": avatar,
        "privilege": [],
    }
    unionid = emu.grant_unionid(grant)
    if unionid:
        body["unionid"] = unionid
    return wx_json(body)


@bp.get(facts.SNS_AUTH)
def sns_auth():
    """Tell whether a web access_token is valid for an openid."""
    state().web_grant(request.args.get("access_token"), request.args.get("openid"))
    return wx_json({"errcode": 0, "errmsg": "ok"})


# -- global credentials ----------------------------------------------------------------


@bp.get(facts.TOKEN)
def token():
    """Issue a classic global access_token (earlier ones die after the grace)."""
    args = request.args
    emu = state()
    if args.get("grant_type") != "client_credential":
        raise ApiError(facts.INVALID_GRANT_TYPE)
    emu.check_app(args.get("appid"), args.get("secret"), check_secret=True)
    value, expires_in = emu.classic_token(args["appid"])
    return wx_json({"access_token": value, "expires_in": expires_in})


@bp.post(facts.STABLE_TOKEN)
def stable_token():
    """Return the stable global access_token, refreshing it when asked or needed."""
    data = request.get_json(force=True, silent=True)
    if not isinstance(data, dict):
        raise ApiError(DATA_FORMAT_ERROR)
    emu = state()
    if data.get("grant_type") != "client_credential":
        raise ApiError(facts.INVALID_GRANT_TYPE)
    emu.check_app(data.get("appid"), data.get("secret"), check_secret=True)
    force = data.get("force_refresh", False)
    if not isinstance(force, bool):
        raise ApiError(DATA_FORMAT_ERROR)
    if force:
        with emu.lock:
            _spend_force_refresh(emu, data["appid"])
            value, expires_in = emu.stable_token(data["appid"], force)
    else:
        value, expires_in = emu.stable_token(data["appid"], force)
    return wx_json({"access_token": value, "expires_in": expires_in})


#: stable_token's force_refresh mode: 20 a day (a day in China time), 30 s apart.
FORCE_REFRESH_DAILY = 20
FORCE_REFRESH_SPACING = 30
_CHINA = 8 * 3600
# The documented errcodes of stable_token for its two limits; WeChat's docs name no
# force-specific one (docs/emulator.md says where these come from).
_DAILY_LIMIT = (facts.QUOTA_REACHED, "reach max api daily quota limit")
_TOO_FREQUENT = (45011, "api minute-quota reach limit mustslower retry next minute")
#: Each emulator's force_refresh history: (its stable dict, {appid: [times]}). Kept here
#: rather than in EmulatorState; a reset replaces ``emu.stable``, which starts a new one.
_FORCED = weakref.WeakKeyDictionary()


def _spend_force_refresh(emu, appid):
    """Count one force_refresh of *appid*, or raise WeChat's errcode for its limits."""
    stable, history = _FORCED.get(emu, (None, None))
    if stable is not emu.stable:
        history = {}
        _FORCED[emu] = (emu.stable, history)
    now = emu.now()
    day_start = (now + _CHINA) // 86400 * 86400 - _CHINA
    times = history.setdefault(appid, [])
    times[:] = [t for t in times if t >= day_start]
    if times and now - times[-1] < FORCE_REFRESH_SPACING:
        raise ApiError(*_TOO_FREQUENT)
    if len(times) >= FORCE_REFRESH_DAILY:
        raise ApiError(*_DAILY_LIMIT)
    times.append(now)


@bp.get(facts.TICKET)
def ticket():
    """Issue a jsapi_ticket (earlier tickets keep verifying for the grace)."""
    emu = state()
    appid = emu.token_appid(request.args.get("access_token"))
    if request.args.get("type") != "jsapi":
        raise ApiError(INVALID_ARGS)
    value, expires_in = emu.issue_ticket(appid)
    return wx_json({"errcode": 0, "errmsg": "ok", "ticket": value, "expires_in": expires_in})


@bp.get(facts.USER_INFO)
def user_info():
    """Return what the global API tells about a user: little unless they follow."""
    emu = state()
    appid = emu.token_appid(request.args.get("access_token"))
    openid = request.args.get("openid")
    key = emu.user_by_openid(appid, openid)
    unionid = emu.unionid(key)
    since = emu.follow_time(key, appid)
    if since is None:
        body = {"subscribe": 0, "openid": openid}
        if unionid:
            body["unionid"] = unionid
        return wx_json(body)
    # No nickname/headimgurl: WeChat stopped returning them here in December 2021.
    body = {
        "subscribe": 1,
        "openid": openid,
        "language": emu.users[key].language,
        "subscribe_time": since,
    }
    if unionid:
        body["unionid"] = unionid
    qr = emu.follow_scene(key, appid)
    body.update(
        remark="",
        groupid=0,
        tagid_list=[],
        subscribe_scene="ADD_SCENE_QR_CODE",
        qr_scene=(qr.scene_id or 0) if qr else 0,
        qr_scene_str=(qr.scene_str or "") if qr else "",
    )
    return wx_json(body)


# -- media -----------------------------------------------------------------------------


def store_upload(kind, data, content_type, appid=None, duration_ms=None, speex=None):
    """Keep uploaded bytes as media of *kind*; return (media_id, created_at)."""
    if kind == "image":
        content_type = media_bytes.sniff_image_type(data, content_type or "image/jpeg")
    elif kind == "voice":
        content_type = "audio/amr"
        if duration_ms is None:
            duration_ms = media_bytes.amr_duration_ms(data)
    else:
        content_type = content_type or "application/octet-stream"
    return state().add_media(kind, data, content_type, appid, duration_ms or 0, speex)


@bp.post(facts.MEDIA_UPLOAD)
def media_upload():
    """Keep a multipart ``media`` upload as temporary media."""
    emu = state()
    appid = emu.token_appid(request.args.get("access_token"))
    kind = request.args.get("type")
    if kind not in _MEDIA_TYPES:
        raise ApiError(facts.INVALID_MEDIA_TYPE)
    upload = request.files.get("media")
    if upload is None:
        raise ApiError(facts.MISSING_MEDIA_DATA)
    media_id, created_at = store_upload(kind, upload.read(), upload.mimetype, appid)
    return wx_json({"type": kind, "media_id": media_id, "created_at": int(created_at)})


def _stream(data):
    # A generator so a 20 MB body goes out in chunks instead of one huge write.
    view = memoryview(data)
    for start in range(0, len(view), _CHUNK):
        yield bytes(view[start : start + _CHUNK])


def media_response(media_id, data, content_type):
    """Answer media bytes the way media/get does (attachment, exact length)."""
    ext = media_bytes.EXTENSIONS.get(content_type, ".jpg" if "image" in content_type else "")
    return Response(
        _stream(data),
        content_type=content_type,
        headers={
            "Content-Length": str(len(data)),
            "Content-Disposition": f'attachment; filename="{media_id}{ext}"',
            "Cache-Control": "no-cache, must-revalidate",
        },
        direct_passthrough=True,
    )


@bp.get(facts.MEDIA_GET)
def media_get():
    """Download temporary media by media_id."""
    emu = state()
    appid = emu.token_appid(request.args.get("access_token"))
    item = emu.get_media(request.args.get("media_id"), appid)
    return media_response(item.media_id, item.data, item.content_type)


@bp.get(facts.MEDIA_GET_JSSDK)
def media_get_jssdk():
    """Download a JS-SDK voice as "high quality" speex (given, made-up real, or stand-in)."""
    emu = state()
    appid = emu.token_appid(request.args.get("access_token"))
    item = emu.get_media(request.args.get("media_id"), appid)
    if item.kind != "voice":
        raise ApiError(facts.INVALID_MEDIA_ID)
    if item.speex is not None:
        data = item.speex
    elif emu.real_speex:
        data = media_bytes.wechat_speex(item.duration_ms)
    else:
        data = media_bytes.fake_speex(item.duration_ms)
    return media_response(item.media_id, data, "voice/speex")
