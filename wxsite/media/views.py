"""``/upload``, ``/voice``, ``/uploads/<id>``: pages, JSON endpoints and owner-only files.

Stored files are served through the site from either store (never a public bucket, never
a presigned URL): the owner check runs on every request, pages keep linking to
``/uploads/<id>`` (CSP ``'self'``), and the headers (type, nosniff, no-store) are ours.
"""

import logging

from flask import (
    Blueprint,
    Response,
    abort,
    flash,
    jsonify,
    redirect,
    request,
    url_for,
)
from flask_login import current_user
from werkzeug.datastructures import ContentRange

from .. import store
from ..menu import home_entry
from ..auth.decorators import wechat_required
from ..errors import error_response, media_limit
from ..jssdk.signing import page_apis, render_jssdk
from . import blobs
from .storage import (
    ItemError,
    blob_store,
    remove_files,
    save_image,
    save_voice,
    storage_unavailable,
    transcode_key,
)

log = logging.getLogger("wxsite.media")

bp = Blueprint("media", __name__)
home_entry(bp, "upload", "上传照片", "拍照或从相册选择")
home_entry(bp, "voice", "语音留言", "录一段语音")
IMAGE_APIS = page_apis("chooseImage", "previewImage", "uploadImage", "getLocalImgData")
VOICE_APIS = page_apis(
    "startRecord",
    "stopRecord",
    "onVoiceRecordEnd",
    "playVoice",
    "stopVoice",
    "onVoicePlayEnd",
    "uploadVoice",
)

MAX_BATCH = 9


@bp.get("/upload")
@wechat_required
def upload():
    """Choose or take photos, upload them one at a time, see the gallery."""
    return _page("image", "media/upload.html", IMAGE_APIS)


@bp.post("/upload")
@wechat_required
def upload_post():
    """Fetch each ``server_ids`` item from WeChat; answer per item."""
    body = request.get_json(silent=True)
    ids = body.get("server_ids") if isinstance(body, dict) else None
    if not isinstance(ids, list) or not ids or len(ids) > MAX_BATCH:
        return error_response(
            400,
            "请求无效",
            f"一次请上传 1–{MAX_BATCH} 张照片（server_ids）。请返回页面重新选择照片。",
            code="bad_request",
        )
    db = store.get_db()
    results = []
    store_down = False
    for server_id in ids:
        try:
            if store_down:
                # One timeout per batch, not nine: the request must end well within 30 s.
                raise storage_unavailable()
            row, created = save_image(db, current_user.person_id, server_id)
        except ItemError as exc:
            store_down = exc.code == "storage_unavailable"
            results.append(
                {
                    "server_id": server_id,
                    "status": "error",
                    "error": exc.code,
                    "message": _item_message(exc),
                }
            )
            continue
        results.append(
            {**_describe(row), "server_id": server_id, "status": "ok" if created else "duplicate"}
        )
    return jsonify({"items": results})


@bp.get("/voice")
@wechat_required
def voice():
    """Record a voice note, listen to it, upload it; list the person's notes."""
    return _page("voice", "media/voice.html", VOICE_APIS)


@bp.post("/voice")
@wechat_required
def voice_post():
    """Fetch one voice note from WeChat."""
    body = request.get_json(silent=True)
    server_id = body.get("server_id") if isinstance(body, dict) else None
    if not isinstance(server_id, str):
        return error_response(
            400, "请求无效", "缺少录音（server_id）。请返回页面重新录音后上传。", code="bad_request"
        )
    try:
        row, created = save_voice(store.get_db(), current_user.person_id, server_id)
    except ItemError as exc:
        return jsonify({"error": exc.code, "message": _item_message(exc)}), exc.status
    return jsonify({"item": {**_describe(row), "status": "ok" if created else "duplicate"}})


@bp.get("/uploads/<int:upload_id>")
@wechat_required
def file(upload_id):
    """Serve a stored file to its owner only (others get 404, not 403)."""
    row = _own(upload_id)
    variant = request.args.get("v")
    if variant == "hq" and row["hq_path"]:
        return _send(row["hq_path"], "audio/speex", f"voice-{row['id']}.speex", attachment=True)
    if row["kind"] == "voice":
        return _send(row["path"], "audio/amr", f"voice-{row['id']}.amr", attachment=True)
    return _send(row["path"], row["content_type"])


@bp.get("/uploads/<int:upload_id>/play")
@wechat_required
def play(upload_id):
    """Serve the browser-playable copy of a voice note."""
    row = _own(upload_id)
    if not row["playable_path"]:
        abort(404)
    return _send(row["playable_path"], "audio/mpeg")


@bp.post("/uploads/<int:upload_id>/delete")
@wechat_required
def delete(upload_id):
    """Delete one of the person's uploads and its files."""
    row = store.delete_upload(store.get_db(), upload_id, current_user.person_id)
    if row is None:
        abort(404)
    remove_files(row)
    flash("已删除", "success")
    return redirect(url_for("media.voice" if row["kind"] == "voice" else "media.upload"))


def _page(kind, template, js_api_list):
    db = store.get_db()
    items = store.list_uploads(db, current_user.person_id, kind)
    if kind == "voice":
        _voice_states(db, items)
    return render_jssdk(template, js_api_list, items=items, max_size=media_limit())


def _item_message(exc):
    """An item's refusal in words; 文件过大 says how large a file may be."""
    if exc.code == "too_large":
        return f"文件过大：每个文件不能超过 {media_limit()}，请选择小一些的文件。"
    return exc.message


def _voice_states(db, items):
    """Say of each voice note: playable, 处理中 (its MP3 is being made), or AMR only."""
    waiting = [item for item in items if not item["playable_path"]]
    states = store.job_states(db, [transcode_key(item["id"]) for item in waiting])
    for item in items:
        state = states.get(transcode_key(item["id"]))
        if item["playable_path"]:
            item["voice_state"] = "playable"
        elif state in store.JOB_ACTIVE:
            item["voice_state"] = "processing"
        elif state == "failed":
            item["voice_state"] = "failed"
        else:
            item["voice_state"] = "amr"
    return items


def _own(upload_id):
    row = store.get_upload(store.get_db(), upload_id, current_user.person_id)
    if row is None:
        abort(404)
    return row


def _wanted_range():
    """Return the one byte range asked for, or None (no Range, several, or an If-Range)."""
    # <audio> in iOS WeChat plays only from servers that answer ranges.
    wanted = request.range
    if wanted is None or wanted.units != "bytes" or len(wanted.ranges) != 1:
        return None
    if "If-Range" in request.headers:  # we send no validators, so none can match
        return None
    return wanted.ranges[0]


def _send(key, mimetype, download_name=None, attachment=False):
    try:
        blob = blob_store().open(key, _wanted_range())
    except blobs.BlobNotFound:
        abort(404)
    except ValueError:  # a row naming something that is no key: nothing to serve
        log.warning("upload row with an unusable path")
        abort(404)
    except blobs.RangeNotSatisfiable as exc:
        response = Response(status=416)
        if exc.size is not None:
            response.headers["Content-Range"] = f"bytes */{exc.size}"
        return response
    except blobs.StorageUnavailable:
        return error_response(503, "存储服务暂时不可用", "请稍后重试。", code="storage_unavailable")
    response = Response(blob.chunks, mimetype=mimetype, direct_passthrough=True)
    response.content_length = blob.length
    response.accept_ranges = "bytes"
    if blob.partial:
        response.status_code = 206
        response.content_range = ContentRange(
            "bytes", blob.start, blob.start + blob.length, blob.size
        )
    if download_name:
        response.headers.set(
            "Content-Disposition", "attachment" if attachment else "inline", filename=download_name
        )
    response.headers["Cache-Control"] = "private, no-store"
    return response


def _describe(row):
    item = {
        "id": row["id"],
        "size": row["size"],
        "url": url_for("media.file", upload_id=row["id"]),
        "delete_url": url_for("media.delete", upload_id=row["id"]),
    }
    if row["kind"] == "voice":
        item["duration"] = row["duration"]
        item["play_url"] = (
            url_for("media.play", upload_id=row["id"]) if row["playable_path"] else None
        )
        # The MP3 is made in the background (voice.transcode): the page says 处理中 until
        # then, and play_url appears in the list once it is there.
        item["processing"] = (
            not row["playable_path"]
            and store.job_states(store.get_db(), [transcode_key(row["id"])]).get(
                transcode_key(row["id"])
            )
            in store.JOB_ACTIVE
        )
    return item
