"""Download media from WeChat to disk: streamed, capped, temp file then caller renames."""

import hashlib
import os
import tempfile
import time

import requests

from .errors import WeChatError
from .http import shorten_deadline


class MediaTooLarge(WeChatError):
    """The media is larger than the configured cap."""

    def __init__(self, path, limit):
        super().__init__(None, f"media larger than {limit} bytes", path)
        self.limit = limit

    @property
    def unavailable(self):
        return False


class Download:
    """A finished download in a temporary file; ``move_to`` or ``discard`` it."""

    def __init__(self, tmp_path, size, sha256, content_type, head):
        self.tmp_path = tmp_path
        self.size = size
        self.sha256 = sha256
        self.content_type = content_type
        #: The first bytes, for signature checks without re-reading the file.
        self.head = head

    def move_to(self, final_path):
        """Rename the file into place (same directory, so the rename is atomic)."""
        os.replace(self.tmp_path, final_path)
        self.tmp_path = None

    def discard(self):
        """Remove the temporary file if it is still there."""
        if self.tmp_path:
            try:
                os.unlink(self.tmp_path)
            except FileNotFoundError:
                pass
            self.tmp_path = None


def save_stream(response, directory, max_bytes, deadline, path):
    """Write ``response``'s body to a temp file in ``directory``; return a ``Download``.

    Never holds the body in memory; stops at ``max_bytes`` or the ``deadline`` (a
    ``time.monotonic()`` value) and removes the partial file.
    """
    declared = response.headers.get("Content-Length")
    if declared and declared.isdigit() and int(declared) > max_bytes:
        response.close()
        raise MediaTooLarge(path, max_bytes)
    # Bound each read too: a server dripping bytes never lets a chunk finish.
    shorten_deadline(response, deadline)
    fd, tmp_path = tempfile.mkstemp(prefix=".part-", dir=directory)
    digest = hashlib.sha256()
    size = 0
    head = b""
    try:
        with os.fdopen(fd, "wb") as out:
            for chunk in response.iter_content(64 * 1024):
                size += len(chunk)
                if size > max_bytes:
                    raise MediaTooLarge(path, max_bytes)
                if time.monotonic() > deadline:
                    raise WeChatError(None, "media download too slow", path)
                if len(head) < 64:
                    head += chunk[: 64 - len(head)]
                digest.update(chunk)
                out.write(chunk)
    except requests.RequestException as exc:
        os.unlink(tmp_path)
        if time.monotonic() > deadline:
            raise WeChatError(None, "media download too slow", path) from None
        raise WeChatError(None, f"media download broke off ({type(exc).__name__})", path) from None
    except BaseException:
        os.unlink(tmp_path)
        raise
    finally:
        response.close()
    content_type = response.headers.get("Content-Type", "application/octet-stream")
    return Download(tmp_path, size, digest.hexdigest(), content_type, head)
