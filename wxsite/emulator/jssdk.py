"""What the fake JS-SDK talks to: its script, signature checks, uploads, downloads."""

from urllib.parse import urlsplit

from flask import Blueprint, current_app, request

from . import wechat_facts as facts
from .api import media_response, store_upload
from .state import ApiError, voice_media
from .web import bad_request, request_json, state, wx_json

bp = Blueprint("jssdk", __name__)

#: Name of the script in the emulator's static folder.
SCRIPT = "jweixin-1.6.0.js"


@bp.get(facts.EMULATOR_JSSDK_PATH)
def script():
    """Serve the fake JS-SDK where pages expect jweixin-1.6.0.js."""
    response = current_app.send_static_file(SCRIPT)
    response.cache_control.no_cache = True
    return response


def _domain_allowed(url):
    domains = current_app.config.get("EMU_JS_DOMAINS")
    if not domains:
        return True
    parts = urlsplit(url)
    return parts.hostname in domains or parts.netloc in domains


@bp.post("/_emu/jssdk/verify")
def verify():
    """Check a wx.config signature against the appId's valid tickets (never shown)."""
    data = request_json()
    url = str(data.get("url") or "")
    if not _domain_allowed(url):
        return wx_json({"ok": False, "errMsg": "config:invalid url domain"})
    ok = state().signature_matches(
        str(data.get("appId") or ""),
        str(data.get("nonceStr") or ""),
        str(data.get("timestamp") or ""),
        url,
        str(data.get("signature") or ""),
    )
    if not ok:
        return wx_json({"ok": False, "errMsg": "config:invalid signature"})
    return wx_json({"ok": True})


def _duration_ms(value):
    try:
        return max(0, int(float(value)))
    except (TypeError, ValueError):
        return None


@bp.post("/_emu/jssdk/upload")
def upload():
    """Keep what uploadImage/uploadVoice send as media; answer its serverId."""
    kind = request.form.get("kind", "image")
    appid = request.form.get("appId") or None
    if appid is not None and appid not in state().accounts:
        return wx_json(ApiError(facts.INVALID_APPID).body())
    upload = request.files.get("file")
    if kind == "image":
        if upload is None:
            return bad_request("uploadImage needs a file")
        media_id, _ = store_upload("image", upload.read(), upload.mimetype, appid)
    elif kind == "voice":
        duration = _duration_ms(request.form.get("duration"))
        if upload is not None and (data := upload.read()):
            media_id, _ = store_upload("voice", data, "audio/amr", appid, duration)
        else:
            # No microphone in the emulator: make a valid AMR of the recorded length.
            data, duration = voice_media(duration or 0)
            media_id, _ = store_upload("voice", data, "audio/amr", appid, duration)
    else:
        return bad_request("kind must be image or voice")
    return wx_json({"serverId": media_id})


@bp.get("/_emu/jssdk/media/<media_id>")
def download(media_id):
    """Give downloadImage/downloadVoice the media's bytes (no access_token: a browser)."""
    item = state().get_media(media_id)
    return media_response(item.media_id, item.data, item.content_type)
