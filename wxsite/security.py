"""What the site accepts from a request, and the headers it answers with (RELIABILITY §2–3).

Input rules live here rather than in the views, so that every route gets them: JSON bodies
are objects or a 400, ``<int:…>`` ids fit SQLite or the route does not match (404), a Host
that is not the site's (``WXSITE_ALLOWED_HOSTS``, from config.py) is a 400, and a body the
site refused without reading is drained so that the client sees the answer, not a reset.
"""

import logging
import socket
import time
from urllib.parse import urlsplit

import flask
from flask import request
from werkzeug.exceptions import BadRequest
from werkzeug.routing import IntegerConverter
from werkzeug.sansio.http import parse_cookie
from werkzeug.sansio.utils import host_is_trusted
from werkzeug.utils import cached_property

from .errors import error_response

log = logging.getLogger("wxsite")

#: Where WeChat serves the JS-SDK (res2 is the fallback public code uses).
JSSDK_HOSTS = ("https://res.wx.qq.com", "https://res2.wx.qq.com")
#: Where WeChat serves avatars (headimgurl).
AVATAR_HOSTS = ("https://thirdwx.qlogo.cn", "https://wx.qlogo.cn")

#: SQLite's INTEGER is a signed 64-bit number; a larger id cannot name a row.
MAX_ID = 2**63 - 1
#: How long draining an unread body may take before the connection is given up.
DRAIN_SECONDS = 5.0


class Request(flask.Request):
    """Flask's request, holding JSON bodies to what every endpoint here takes: one object.

    Its blueprint names are worked out once per matched rule: Flask asks for them in
    every hook and template render, and works them out from the endpoint each time.
    """

    _blueprints_of = (None, [])  # (the url_rule they were worked out for, the names)

    @cached_property
    def cookies(self):
        # Werkzeug's, from the one Cookie value a WSGI environ holds, read directly: its
        # headers.getlist("Cookie") walks every header of the request to find it.
        return parse_cookie(self.environ.get("HTTP_COOKIE", ""), cls=self.dict_storage_class)

    @property
    def blueprints(self):
        rule = self.url_rule
        seen, names = self._blueprints_of
        if seen is not rule or rule is None:
            names = super().blueprints
            self._blueprints_of = (rule, names)
        return names

    def get_json(self, force=False, silent=False, cache=True):
        """Return the body's JSON object; anything else is None (``silent``) or a 400."""
        try:
            value = super().get_json(force=force, silent=silent, cache=cache)
        except RecursionError:
            # Nested deeper than the parser goes: no endpoint takes such a body.
            if not silent:
                raise BadRequest("The JSON body is nested too deeply.") from None
            return None
        if isinstance(value, dict):
            return value
        if silent:
            return None
        raise BadRequest("The body must be a JSON object.")


class IdConverter(IntegerConverter):
    """``<int:…>`` for row ids: ASCII digits up to SQLite's largest INTEGER, else a 404."""

    # \d would also match other scripts' digits (int() accepts "٣"); 19 digits cover 2**63-1.
    regex = r"[0-9]{1,19}"

    def __init__(self, map, fixed_digits=0, min=0, max=MAX_ID, signed=False):
        super().__init__(map, fixed_digits=fixed_digits, min=min, max=max, signed=signed)


class _CountingInput:
    """``wsgi.input`` that counts what the application read (so the rest can be drained)."""

    def __init__(self, stream):
        self._stream = stream
        self.consumed = 0

    def read(self, size=-1):
        data = self._stream.read() if size is None or size < 0 else self._stream.read(size)
        self.consumed += len(data)
        return data

    def readline(self, size=-1):
        whole = size is None or size < 0
        data = self._stream.readline() if whole else self._stream.readline(size)
        self.consumed += len(data)
        return data

    def readlines(self, hint=-1):
        return list(iter(self.readline, b""))

    def __iter__(self):
        return iter(self.readline, b"")


class DrainUnreadBody:
    """WSGI middleware that reads and discards what the application left of a request body."""

    # A request refused before its body was read (CSRF, 413, a 400 on a bad header) leaves
    # the rest of the body in the socket. gunicorn 27 drains at most 64 KB of it for
    # keep-alive (and 64 KB more while closing), then closes while the client is still
    # sending: the client's next segments meet a RST, and it reports a reset instead of
    # the answer. Reading up to max_bytes first keeps the connection clean and open.

    def __init__(self, app, max_bytes):
        self.app = app
        self.max_bytes = max_bytes

    def __call__(self, environ, start_response):
        length = _content_length(environ)
        # A chunked body has no length; it can be read to its end only when the server
        # says it ends the stream there (wsgi.input_terminated: gunicorn, Werkzeug).
        chunked = "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower()
        terminated = chunked and bool(environ.get("wsgi.input_terminated"))
        if not length and not (length is None and terminated):
            return self.app(environ, start_response)
        body = environ["wsgi.input"] = _CountingInput(environ["wsgi.input"])
        result = self.app(environ, start_response)
        unread = None if length is None else length - body.consumed
        if unread is None or 0 < unread <= self.max_bytes:
            # Before the answer goes out: a client that sends its whole body before reading
            # (most do) then finds the answer, and the connection stays open.
            _drain(body, unread, self.max_bytes, _socket(environ))
        return result


def _content_length(environ):
    value = environ.get("CONTENT_LENGTH")
    if not value:
        return None  # most requests: no body, and no ValueError raised to say so
    try:
        value = int(value)
    except ValueError:
        return None
    return value if value >= 0 else None


def _socket(environ):
    sock = environ.get("gunicorn.socket") or environ.get("werkzeug.socket")
    return sock if isinstance(sock, socket.socket) else None


def _drain(body, unread, max_bytes, sock):
    # A client that stops sending must not hold this thread: bound each read by the
    # time left (gunicorn's own drain does the same with its socket).
    deadline = time.monotonic() + DRAIN_SECONDS
    prior = sock.gettimeout() if sock is not None else None
    left = max_bytes if unread is None else unread
    try:
        while left > 0:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            if sock is not None:
                sock.settimeout(remaining)
            data = body.read(min(left, 64 * 1024))
            if not data:
                return
            left -= len(data)
    except (OSError, ValueError):
        return  # timed out or gone: the server closes the connection, as before
    finally:
        if sock is not None:
            try:
                sock.settimeout(prior)
            except OSError:
                pass


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


def init_inputs(app):
    """Install the request rules; call before any blueprint adds a route or a hook."""
    app.request_class = Request
    app.url_map.converters["int"] = IdConverter
    allowed = app.config["WXSITE_ALLOWED_HOSTS"]
    if allowed:
        # The first before_request hook, so no other hook (some write) runs for a foreign
        # host. Not Flask's TRUSTED_HOSTS: it fails while the URL adapter is being made,
        # which leaves the error page without url_for and still runs every hook.
        @app.before_request
        def own_hosts_only():
            if not host_is_trusted(request.host, allowed):
                log.warning(
                    "refused a request for another host: %.80r", request.headers.get("Host")
                )
                return error_response(
                    400,
                    "请求无效",
                    "这个地址不属于本站，请从本站的链接或公众号菜单进入。",
                    code="bad_host",
                )

    # Twice the largest body accepted: enough to drain anything a page or a client of
    # ours sends; a larger body is not worth reading only to refuse it.
    app.wsgi_app = DrainUnreadBody(app.wsgi_app, 2 * app.config["MAX_CONTENT_LENGTH"])


def init_app(app):
    """Add the security headers to every response."""
    # Set unless the view set its own; looked up once per response, added in one go.
    always = [
        ("Content-Security-Policy", content_security_policy(app.config)),
        ("X-Content-Type-Options", "nosniff"),
        # same-origin: ?code= and state never leak to third parties, and Flask-WTF's
        # referrer check still works for our own forms.
        ("Referrer-Policy", "same-origin"),
        ("X-Frame-Options", "DENY"),
    ]
    always = [(name.lower(), name, value) for name, value in always]
    hsts = ("strict-transport-security", "Strict-Transport-Security", "max-age=31536000")
    # Pages carry per-person content and one-time signatures: never cache them.
    no_store = ("cache-control", "Cache-Control", "no-store")

    @app.after_request
    def security_headers(response):
        headers = response.headers
        present = {name.lower() for name, _ in headers}
        wanted = always
        req = request._get_current_object()
        if req.is_secure:
            wanted = wanted + [hsts]
        if req.endpoint != "static":
            wanted = wanted + [no_store]
        for key, name, value in wanted:
            if key not in present:
                headers.add(name, value)  # (extend checks each item's type first)
        return response
