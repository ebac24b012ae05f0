"""Response headers for pages opened in WeChat's in-app browser (RELIABILITY §3)."""

from urllib.parse import urlsplit

from flask import request

#: Where WeChat serves the JS-SDK (res2 is the fallback public code uses).
JSSDK_HOSTS = ("https://res.wx.qq.com", "https://res2.wx.qq.com")
#: Where WeChat serves avatars (headimgurl).
AVATAR_HOSTS = ("https://thirdwx.qlogo.cn", "https://wx.qlogo.cn")


def _origin(url):
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def content_security_policy(config):
    """Return the CSP: only this site and WeChat's script/avatar hosts, no inline script."""
    scripts = {_origin(config["WX_JSSDK_URL"]), *JSSDK_HOSTS}
    images = set(AVATAR_HOSTS)
    connect = set()
    if config["WX_EMULATOR"]:
        # The fake JS-SDK talks to the emulator, and its avatars live there.
        emulator = _origin(config["WX_API_BASE"])
        images.add(emulator)
        connect.add(emulator)
    directives = [
        "default-src 'self'",
        "script-src 'self' " + " ".join(sorted(scripts)),
        "style-src 'self'",
        "img-src 'self' data: blob: " + " ".join(sorted(images)),
        "media-src 'self' blob:",
        "connect-src 'self'" + "".join(" " + o for o in sorted(connect)),
        "object-src 'none'",
        "frame-ancestors 'none'",
        "form-action 'self'",
        "base-uri 'none'",
    ]
    return "; ".join(directives)


def init_app(app):
    """Add the security headers to every response."""
    csp = content_security_policy(app.config)

    @app.after_request
    def security_headers(response):
        headers = response.headers
        headers.setdefault("Content-Security-Policy", csp)
        headers.setdefault("X-Content-Type-Options", "nosniff")
        # same-origin: ?code= and state never leak to third parties, and Flask-WTF's
        # referrer check still works for our own forms.
        headers.setdefault("Referrer-Policy", "same-origin")
        headers.setdefault("X-Frame-Options", "DENY")
        if request.is_secure:
            headers.setdefault("Strict-Transport-Security", "max-age=31536000")
        if request.endpoint != "static":
            # Pages carry per-person content and one-time signatures: never cache them.
            headers.setdefault("Cache-Control", "no-store")
        return response
