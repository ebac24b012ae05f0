"""Real image and voice bytes for media tests."""

import io

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
