"""One log line per request, with a request id and a short hash of the openid.

Never the openid itself, tokens, codes or secrets: only the path (no query string, which
carries ``code`` and ``state``) is logged.
"""

import functools
import hashlib
import logging
import os
import time

from flask import g, has_request_context, request

log = logging.getLogger("wxsite.request")


@functools.lru_cache(maxsize=4096)
def openid_hash(openid):
    """Return a short, stable, non-reversible label for an openid."""
    return hashlib.sha256(openid.encode()).hexdigest()[:10] if openid else "-"


class RequestIdFilter(logging.Filter):
    """Give every record a ``request_id`` (``-`` outside requests), WeChat calls included."""

    def filter(self, record):
        if "request_id" not in record.__dict__:  # the request line brings its own
            record.request_id = (
                g._get_current_object().get("request_id", "-") if has_request_context() else "-"
            )
        return True


FORMAT = "%(asctime)s %(levelname)s [%(request_id)s] %(name)s: %(message)s"
#: The one line per request.
LINE = "%s %s %s %.0fms user=%s"


class Formatter(logging.Formatter):
    """logging's Formatter, with the date and time formatted once per second, not per line."""

    _second = (None, "")

    def formatTime(self, record, datefmt=None):
        if datefmt:
            return super().formatTime(record, datefmt)
        second = int(record.created)
        cached, text = self._second
        if cached != second:
            text = time.strftime(self.default_time_format, self.converter(second))
            self._second = (second, text)  # one assignment: safe beside other threads
        return self.default_msec_format % (text, record.msecs)


def init_app(app):
    """Install the formatter, the request id and the per-request line."""
    logger = logging.getLogger("wxsite")
    logger.setLevel(app.config["WXSITE_LOG_LEVEL"].upper())
    if not any(getattr(h, "_wxsite", False) for h in logger.handlers):
        handler = logging.StreamHandler()
        handler._wxsite = True
        handler.setFormatter(Formatter(FORMAT))
        handler.addFilter(RequestIdFilter())
        logger.addHandler(handler)
        logger.propagate = app.testing  # tests read records through pytest's caplog

    @app.before_request
    def start_timer():
        ctx = g._get_current_object()
        ctx.request_id = os.urandom(6).hex()  # secrets.token_hex(6), unwrapped
        ctx.request_started = time.monotonic()

    @app.after_request
    def log_request(response):
        ctx = g._get_current_object()
        started = ctx.get("request_started")
        req = request._get_current_object()
        if started is None or req.endpoint == "static":
            return response
        user = ctx.get("_login_user")
        openid = getattr(user, "openid", None) if user is not None else None
        if log.isEnabledFor(logging.INFO):
            # log.info's record, made without its search of the stack for the caller (the
            # line's place is this function, always).
            args = (
                req.method,
                req.path,
                response.status_code,
                (time.monotonic() - started) * 1000,
                openid_hash(openid),
            )
            extra = {"request_id": ctx.request_id}  # what the filter would look up again
            log.handle(
                log.makeRecord(log.name, logging.INFO, *_HERE, LINE, args, None, *_FUNC, extra)
            )
        # Added, not set: nothing else names it, and setting searches every header first.
        response.headers.add("X-Request-Id", ctx.request_id)
        return response

    _HERE = (log_request.__code__.co_filename, log_request.__code__.co_firstlineno)
    _FUNC = ("log_request",)


def quiet(command):
    """Hold the site's INFO lines back while a CLI command runs: its output is its own.

    Warnings and errors still reach stderr. Commands that serve (``wx run``, ``wx
    emulator``, ``wx worker``) keep the request and job lines.
    """

    @functools.wraps(command)
    def run(*args, **kwargs):
        logger = logging.getLogger("wxsite")
        level = logger.level
        logger.setLevel(max(level, logging.WARNING))
        try:
            return command(*args, **kwargs)
        finally:
            logger.setLevel(level)

    return run
