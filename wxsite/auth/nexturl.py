"""Where a login may send people back to: same-site relative paths only."""

from urllib.parse import unquote, urlsplit

from flask import request


def safe_next(value, default="/"):
    """Return ``value`` if it is a same-site path such as ``/me?tab=1``, else ``default``.

    Refuses anything a browser could read as another host: ``//evil``, ``/\\evil``,
    schemes (``javascript:``), control characters (``\\njavascript:``), and the same
    tricks percent-encoded.
    """
    if not value or not isinstance(value, str) or len(value) > 2048:
        return default
    for candidate in (value, unquote(value)):
        if any(ord(c) < 0x20 or ord(c) == 0x7F or c == "\\" for c in candidate):
            return default
        if not candidate.startswith("/") or candidate.startswith("//"):
            return default
        parts = urlsplit(candidate)
        if parts.scheme or parts.netloc:
            return default
    return value


def next_url(path):
    """Return where to send the browser for the app-relative ``path`` a login carried.

    ``next`` paths are the site's own (``/me``), without the prefix a proxy mounts the site
    under (``X-Forwarded-Prefix``, trusted through WX_PROXY_HOPS): the redirect adds it.
    """
    return request.script_root + path
