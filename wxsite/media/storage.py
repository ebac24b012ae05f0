"""Fetch media from WeChat into WXSITE_UPLOADS: one item at a time, all or nothing each.

Files get generated names (never names from input), arrive in a temp file and are
renamed into place; the row is written last, and a failure removes what was written.
"""

import logging
import os
import re

from authlib.common.security import generate_token
from flask import current_app

from .. import store, wx
from ..errors import wechat_failure
from ..wechat import MediaTooLarge, WeChatError, protocol
from . import images, speex, voice

log = logging.getLogger("wxsite.media")
MEDIA_ID_RE = re.compile(protocol.MEDIA_ID_PATTERN)


class ItemError(Exception):
    """One item could not be stored; ``message`` is for people, ``code`` for programs."""

    def __init__(self, code, message, status=400):
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status


def folder(kind):
    """Return (and create) the folder for ``kind`` under WXSITE_UPLOADS."""
    path = os.path.join(current_app.config["WXSITE_UPLOADS"], kind)
    os.makedirs(path, exist_ok=True)
    return path


def absolute(relative):
    """Return the absolute path of a stored file."""
    return os.path.join(current_app.config["WXSITE_UPLOADS"], relative)


def remove_files(row):
    """Delete an upload's files (original, high-quality copy, playable copy)."""
    for key in ("path", "hq_path", "playable_path"):
        if row.get(key):
            try:
                os.unlink(absolute(row[key]))
            except FileNotFoundError:
                pass


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
        raise ItemError("save_failed", "保存失败，请重试", 503) from None


def save_image(db, person_id, media_id):
    """Download, check, re-encode and record one image; return ``(row, created)``."""
    directory = folder("images")
    download = _download(media_id, directory)
    final = None
    try:
        duplicate = store.find_upload(db, person_id, "image", download.sha256)
        if duplicate:
            return duplicate, False
        try:
            _, ext, _ = images.sniff(download.head)
            name = f"{generate_token(24)}.{ext}"
            final = os.path.join(directory, name)
            clean = os.path.join(directory, f".clean-{name}")
            try:
                content_type = images.reencode(download.tmp_path, clean, download.head)
                os.replace(clean, final)
            finally:
                if os.path.exists(clean):
                    os.unlink(clean)
        except images.NotAnImage:
            raise ItemError(
                "not_an_image", "不是有效的图片（仅支持 JPEG、PNG、GIF、WebP）"
            ) from None
        row, created = store.add_upload(
            db,
            person_id,
            "image",
            media_id,
            f"images/{name}",
            download.sha256,
            os.path.getsize(final),
            content_type,
        )
        if not created:  # the same image was stored by a concurrent request
            os.unlink(final)
        return row, created
    except OSError as exc:
        log.error("saving image failed: %s", exc.strerror)
        if final and os.path.exists(final):
            os.unlink(final)
        raise ItemError("save_failed", "保存失败，请重试", 503) from None
    except BaseException:
        if final and os.path.exists(final):
            os.unlink(final)
        raise
    finally:
        download.discard()


def save_voice(db, person_id, media_id):
    """Download one voice note (AMR, plus speex when WeChat has it); return ``(row, created)``."""
    directory = folder("voice")
    amr = _download(media_id, directory)
    hq = None
    written = []
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
        frames = speex.read_frames(hq.tmp_path) if hq else None
        if hq and frames is None:
            # Not speex we can read: keeping it would offer people a .speex that is not one.
            hq.discard()
            hq = None
        base = generate_token(24)
        paths = {"path": f"voice/{base}.amr"}
        amr.move_to(absolute(paths["path"]))
        written.append(paths["path"])
        if hq:
            paths["hq_path"] = f"voice/{base}.speex"
            hq.move_to(absolute(paths["hq_path"]))
            written.append(paths["hq_path"])
        playable = _playable(base, frames, absolute(paths["path"]))
        if playable:
            paths["playable_path"] = playable
            written.append(playable)
        row, created = store.add_upload(
            db,
            person_id,
            "voice",
            media_id,
            paths["path"],
            amr.sha256,
            amr.size,
            "audio/amr",
            duration=voice.amr_duration(absolute(paths["path"])),
            hq_path=paths.get("hq_path"),
            playable_path=paths.get("playable_path"),
        )
        if not created:
            _unlink(written)
        return row, created
    except OSError as exc:
        log.error("saving voice failed: %s", exc.strerror)
        _unlink(written)
        raise ItemError("save_failed", "保存失败，请重试", 503) from None
    except BaseException:
        _unlink(written)
        raise
    finally:
        amr.discard()
        if hq:
            hq.discard()


def _playable(base, frames, amr_path):
    """Return the MP3 people play (from the speex if it decodes, else the AMR), or None."""
    if frames:
        hd = f"voice/{base}{voice.HD_MP3}"
        if speex.to_mp3(frames, absolute(hd)):
            return hd
    mp3 = f"voice/{base}.mp3"
    return mp3 if voice.transcode(amr_path, absolute(mp3)) else None


def _unlink(relatives):
    for relative in relatives:
        try:
            os.unlink(absolute(relative))
        except FileNotFoundError:
            pass
