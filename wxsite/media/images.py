"""Decide whether downloaded bytes really are an image, and re-encode them.

Re-encoding with Pillow drops anything riding along in a polyglot (HTML after the JPEG
end marker, scripts in comments, EXIF with location) before we ever serve the file.
"""

import warnings

from PIL import Image, UnidentifiedImageError

#: magic bytes → (Pillow format, extension, content type)
SIGNATURES = (
    (b"\xff\xd8\xff", ("JPEG", "jpg", "image/jpeg")),
    (b"\x89PNG\r\n\x1a\n", ("PNG", "png", "image/png")),
    (b"GIF87a", ("GIF", "gif", "image/gif")),
    (b"GIF89a", ("GIF", "gif", "image/gif")),
)
#: Refuse images with more pixels than this (decompression bombs).
MAX_PIXELS = 40_000_000


class NotAnImage(ValueError):
    """The bytes are not a JPEG, PNG, GIF or WebP we accept."""


def sniff(head):
    """Return (format, extension, content type) from the first bytes, or raise."""
    for magic, kind in SIGNATURES:
        if head.startswith(magic):
            return kind
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return ("WEBP", "webp", "image/webp")
    raise NotAnImage("not a JPEG/PNG/GIF/WebP")


def reencode(src_path, dest_path, head):
    """Verify ``src_path`` and write a clean copy to ``dest_path``; return its content type."""
    fmt, _, content_type = sniff(head)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(src_path) as probe:
                if probe.format != fmt:
                    raise NotAnImage(f"says {fmt}, decodes as {probe.format}")
                if probe.width * probe.height > MAX_PIXELS:
                    raise NotAnImage("too many pixels")
                probe.verify()
            with Image.open(src_path) as image:
                image.load()
                _save(image, dest_path, fmt)
    except (
        UnidentifiedImageError,
        OSError,
        SyntaxError,
        ValueError,
        Image.DecompressionBombError,
        Image.DecompressionBombWarning,
    ) as exc:
        if isinstance(exc, NotAnImage):
            raise
        if isinstance(exc, OSError) and exc.errno is not None:
            raise  # disk trouble, not a bad image
        raise NotAnImage(str(exc)) from None
    return content_type


def _save(image, dest_path, fmt):
    if fmt == "JPEG":
        if image.mode not in ("RGB", "L"):
            image = image.convert("RGB")
        image.save(dest_path, "JPEG", quality=90, optimize=True)
    elif fmt == "GIF":
        image.save(dest_path, "GIF", save_all=True)
    else:
        image.save(dest_path, fmt)
