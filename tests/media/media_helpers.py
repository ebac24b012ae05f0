"""Real image and voice bytes for media tests."""

import io
import os

from PIL import Image


def image_bytes(fmt="JPEG", size=(64, 48), color=(200, 30, 30)):
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, fmt)
    return buffer.getvalue()


def amr_bytes(seconds=2):
    return b"#!AMR\n" + (b"\x3c" + b"\x00" * 31) * (50 * seconds)


def json_poster(session, live):
    """Return post(path, body): JSON with the page's CSRF token, like the page's script."""
    from support import csrf_token

    token = csrf_token(session.get(live.url("/upload")).text)

    def post(path, body):
        return session.post(
            live.url(path), json=body, headers={"X-CSRFToken": token, "Accept": "application/json"}
        )

    return post


def blob_store(app):
    from wxsite.media import blobs

    return app.extensions[blobs.EXTENSION]


def stored_files(app, kind="images"):
    """Names under ``kind`` in the app's blob store, plus S3 mode's local temp files, sorted.

    Empty means nothing was kept and nothing half-written was left, on either store.
    """
    store = blob_store(app)
    names = [key.split("/", 1)[1] for key, _ in store.iter_keys() if key.startswith(kind + "/")]
    if store.local_temp_root:
        folder = os.path.join(store.local_temp_root, kind)
        names += os.listdir(folder) if os.path.isdir(folder) else []
    return sorted(names)
