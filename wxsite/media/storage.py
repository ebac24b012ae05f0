"""Fetch media from WeChat into the blob store: one item at a time, all or nothing each.

Files get generated names (never names from input). Each is downloaded into a local temp
file, checked and re-encoded (or transcoded) there, then put into the store (a rename in a
local folder, an upload to a bucket); the row is written last, and a failure removes what
was put. A process killed in between leaves an object no row names, which the sweep in
``wxsite.maintenance`` removes after its grace period.
"""

import logging
import os
import re

from authlib.common.security import generate_token
from flask import current_app

from .. import store, wx
from ..errors import wechat_failure
from ..wechat import MediaTooLarge, WeChatError, protocol
from . import blobs, images, speex, voice

log = logging.getLogger("wxsite.media")
MEDIA_ID_RE = re.compile(protocol.MEDIA_ID_PATTERN)


class ItemError(Exception):
    """One item could not be stored; ``message`` is for people, ``code`` for programs."""

    def __init__(self, code, message, status=400):
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status


def storage_unavailable():
    """Return the ItemError of an object store that does not answer."""
    return ItemError("storage_unavailable", "存储服务暂时不可用，请稍后重试", 503)


def save_failed():
    """Return the ItemError of a local disk or database failure."""
    return ItemError("save_failed", "保存失败，请重试", 503)


def blob_store():
    """Return the app's blob store (``wxsite.media.blobs``)."""
    return current_app.extensions[blobs.EXTENSION]


def remove_files(row):
    """Delete an upload's stored files; one the store cannot delete now is left to the sweep."""
    for key in store.UPLOAD_FILES:
        if row.get(key):
            try:
                blob_store().delete(row[key])
            except blobs.StorageUnavailable:
                # Still queued in orphan_files (delete_upload did that): the sweep retries.
                log.warning("stored file left for the sweep: the object store did not answer")


def _download(media_id, directory, high_quality_voice=False):
    if not isinstance(media_id, str) or not MEDIA_ID_RE.fullmatch(media_id):
        raise ItemError("invalid_media_id", "无效的媒体编号")
    try:
        return wx.client().download_media(
            media_id, directory, current_app.config["WXSITE_MEDIA_MAX_BYTES"], high_quality_voice
        )
    except MediaTooLarge:
        raise ItemError("too_large", "文件过大", 413) from None
    except WeChatError as exc:
        if exc.errcode == protocol.INVALID_MEDIA_ID:
            raise ItemError("media_expired", "文件已失效，请重新上传", 400) from None
        status, title, detail = wechat_failure(exc)
        raise ItemError(f"wechat_{exc.errcode or 'unavailable'}", title, status) from None
    except OSError as exc:
        log.error("saving media failed: %s", exc.strerror)
        raise save_failed() from None


class _Written:
    """The keys put into the store for one item, removed again unless the row took them."""

    def __init__(self):
        self.keys = []

    def put(self, tmp_path, key, content_type):
        blob_store().put_file(tmp_path, key, content_type)
        self.keys.append(key)

    def remove(self):
        for key in self.keys:
            try:
                blob_store().delete(key)
            except blobs.StorageUnavailable:
                log.warning("a stored file without its row is left for the sweep")
        self.keys = []


def _unlink(path):
    if path:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass


def _record(written, db, *args, **extra):
    """Insert the row for what ``written`` holds; return ``(row, created)``."""
    try:
        row, created = store.add_upload(db, *args, **extra)
    except store.Error as exc:
        log.error("recording an upload failed: %s", type(exc).__name__)
        raise save_failed() from None
    if not created:  # the same content was stored by a concurrent request
        written.remove()
    return row, created


def _stored(action):
    """Run the item's body, translating storage failures and undoing its writes on any."""

    def run(*args):
        written = _Written()
        try:
            return action(written, *args)
        except blobs.StorageUnavailable:
            written.remove()
            raise storage_unavailable() from None
        except OSError as exc:
            log.error("saving media failed: %s", exc.strerror)
            written.remove()
            raise save_failed() from None
        except BaseException:
            written.remove()
            raise

    return run


def save_image(db, person_id, media_id):
    """Download, check, re-encode and record one image; return ``(row, created)``."""
    return _stored(_save_image)(db, person_id, media_id)


def _save_image(written, db, person_id, media_id):
    directory = blob_store().temp_dir("images")
    download = _download(media_id, directory)
    clean = None
    try:
        duplicate = store.find_upload(db, person_id, "image", download.sha256)
        if duplicate:
            return duplicate, False
        try:
            _, ext, _ = images.sniff(download.head)
            name = f"{generate_token(24)}.{ext}"
            clean = os.path.join(directory, f".clean-{name}")
            content_type = images.reencode(download.tmp_path, clean, download.head)
        except images.NotAnImage:
            raise ItemError(
                "not_an_image", "不是有效的图片（仅支持 JPEG、PNG、GIF、WebP）"
            ) from None
        size = os.path.getsize(clean)
        download.discard()  # no need to keep both copies while the clean one goes up
        written.put(clean, f"images/{name}", content_type)
        return _record(
            written,
            db,
            person_id,
            "image",
            media_id,
            f"images/{name}",
            download.sha256,
            size,
            content_type,
        )
    finally:
        download.discard()
        _unlink(clean)


def save_voice(db, person_id, media_id):
    """Download one voice note (AMR, plus speex when WeChat has it); return ``(row, created)``."""
    return _stored(_save_voice)(db, person_id, media_id)


def _save_voice(written, db, person_id, media_id):
    directory = blob_store().temp_dir("voice")
    amr = _download(media_id, directory)
    hq = None
    try:
        if not voice.is_amr(amr.head):
            raise ItemError("not_voice", "不是有效的语音")
        duplicate = store.find_upload(db, person_id, "voice", amr.sha256)
        if duplicate:
            return duplicate, False
        try:
            hq = _download(media_id, directory, high_quality_voice=True)
        except ItemError as exc:
            log.info("no high-quality voice for this media: %s", exc.code)
        if hq and speex.read_frames(hq.tmp_path) is None:
            # Not speex we can read: keeping it would offer people a .speex that is not one.
            hq.discard()
            hq = None
        base = generate_token(24)
        # The request stores what WeChat gave and answers; the MP3 people play is made by
        # the voice.transcode job (wxsite.jobs), and the page says 处理中 until then.
        duration = voice.amr_duration(amr.tmp_path)
        paths = {"path": f"voice/{base}.amr"}
        written.put(amr.tmp_path, paths["path"], "audio/amr")
        if hq:
            paths["hq_path"] = f"voice/{base}.speex"
            written.put(hq.tmp_path, paths["hq_path"], "audio/speex")
        row, created = _record(
            written,
            db,
            person_id,
            "voice",
            media_id,
            paths["path"],
            amr.sha256,
            amr.size,
            "audio/amr",
            duration=duration,
            hq_path=paths.get("hq_path"),
        )
    finally:
        # A local put renamed these away; in S3 mode the temp copies go now.
        amr.discard()
        if hq:
            hq.discard()
    if created:
        queue_transcode(row["id"])
    return row, created


def transcode_key(upload_id):
    """Return the job key of a voice note's transcoding."""
    return f"voice.transcode:{upload_id}"


def queue_transcode(upload_id):
    """Queue the making of a voice note's MP3 (never raises: the page then offers the AMR)."""
    from .. import jobs

    jobs.enqueue("voice.transcode", {"upload_id": upload_id}, transcode_key(upload_id), again=False)


def transcode_voice(db, upload_id):
    """The voice.transcode job: make and record the MP3 of upload ``upload_id``, once.

    Idempotent: a note already playable, or deleted, is left alone; the MP3's key comes
    from the note's own name, so a second run after a crash overwrites the same object,
    and the row takes it only while it has none.
    """
    row = store.upload_row(db, upload_id)
    if row is None or row["kind"] != "voice":
        return "no such voice note (deleted)"
    if row["playable_path"]:
        return "already playable"
    if not voice.ffmpeg_available():
        log.warning("ffmpeg is not installed: voice notes stay AMR (install ffmpeg to play them)")
        return "no ffmpeg: kept as AMR"
    directory = blob_store().temp_dir("voice")
    base = row["path"].rsplit("/", 1)[-1].rsplit(".", 1)[0]
    amr = hq = playable = None
    try:
        amr = _fetch(row["path"], directory, f".clean-{base}.src.amr")
        frames = None
        if row["hq_path"]:
            hq = _fetch(row["hq_path"], directory, f".clean-{base}.src.speex")
            frames = speex.read_frames(hq)
        playable = _playable(directory, base, frames, amr)
        if playable is None:
            raise RuntimeError("ffmpeg could not convert this voice note")
        tmp, key = playable
        blob_store().put_file(tmp, key, "audio/mpeg")
        if not store.set_playable(db, upload_id, key):
            # Deleted while we worked (or another run won): this copy belongs to no row.
            try:
                if store.upload_row(db, upload_id) is None:
                    blob_store().delete(key)
            except blobs.StorageUnavailable:
                pass  # an object no row names: the sweep removes it
            return "no longer needed"
        return "playable" + (" (from speex)" if key.endswith(voice.HD_MP3) else "")
    finally:
        for path in (amr, hq, playable[0] if playable else None):
            _unlink(path)


def _fetch(key, directory, name):
    """Copy a stored object into ``directory`` as ``name`` (streamed); return its path."""
    path = os.path.join(directory, name)
    blob = blob_store().open(key)
    written = 0
    try:
        with open(path, "wb") as f:
            for chunk in blob.chunks:
                f.write(chunk)
                written += len(chunk)
        if written != blob.length:  # the store broke off (Chunks only logs that)
            raise blobs.StorageUnavailable(f"{key} was cut short while being read")
    except BaseException:
        _unlink(path)
        raise
    finally:
        blob.chunks.close()
    return path


def _playable(directory, base, frames, amr_path):
    """Return ``(temp file, key)`` of the MP3 people play (from speex, else AMR), or None."""
    if frames:
        tmp = os.path.join(directory, f".clean-{base}{voice.HD_MP3}")
        if speex.to_mp3(frames, tmp):
            return tmp, f"voice/{base}{voice.HD_MP3}"
    tmp = os.path.join(directory, f".clean-{base}.mp3")
    return (tmp, f"voice/{base}.mp3") if voice.transcode(amr_path, tmp) else None
