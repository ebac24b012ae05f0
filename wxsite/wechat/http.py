"""HTTP to WeChat: timeouts on every call, errcode detection, bounded retries, safe logs."""

import logging
import os
import random
import threading
import time

import requests

from . import protocol
from .errors import WeChatError

log = logging.getLogger("wxsite.wechat")

CONNECT_TIMEOUT = 3.05


class Transport:
    """Speak JSON (and media bytes) to one WeChat API base.

    One ``requests.Session`` per process: a session created before gunicorn forks
    would share its pooled sockets between workers.
    """

    def __init__(self, base, read_timeout=5.0, deadline=15.0, retries=2, backoff=0.2):
        self.base = base.rstrip("/")
        self.read_timeout = read_timeout
        self.deadline = deadline
        self.retries = retries
        self.backoff = backoff
        self._session = None
        self._pid = None
        self._lock = threading.Lock()

    @property
    def session(self):
        with self._lock:
            if self._session is None or self._pid != os.getpid():
                self._session = requests.Session()
                self._session.headers["User-Agent"] = "wxsite"
                self._pid = os.getpid()
            return self._session

    def get_json(self, path, params):
        """GET ``path`` and return its JSON, raising ``WeChatError`` for any errcode."""
        return self._call("GET", path, params=params)

    def post_json(self, path, params=None, json=None):
        """POST JSON to ``path`` and return its JSON, raising ``WeChatError`` for any errcode."""
        return self._call("POST", path, params=params, json=json)

    def stream(self, path, params):
        """GET ``path`` streaming; return the open response (caller closes) or raise."""
        return self._call("GET", path, params=params, stream=True)

    def send(self, path, send):
        """Run ``send(timeout)`` (a requests call made elsewhere, e.g. by Authlib) like ours.

        The same deadline, bounded retries, errcode check and path-only log line as every
        other call; returns the checked ``requests.Response`` (its JSON is an answer, not an
        errcode).
        """
        return self._retrying(path, send, stream=False, raw=True)

    def _call(self, method, path, stream=False, **kwargs):
        def send(timeout):
            return self.session.request(
                method, self.base + path, timeout=timeout, stream=stream, **kwargs
            )

        return self._retrying(path, send, stream=stream, raw=False)

    def _retrying(self, path, send, stream, raw):
        started = time.monotonic()
        attempt = 0
        while True:
            try:
                return self._once(path, send, started, stream, raw)
            except WeChatError as exc:
                retryable = exc.unavailable or exc.errcode in protocol.RETRY_ERRCODES
                pause = self.backoff * (2**attempt) * (0.5 + random.random())
                left = self.deadline - (time.monotonic() - started)
                if not retryable or attempt >= self.retries or left < pause + 1:
                    raise
                attempt += 1
                time.sleep(pause)

    def _once(self, path, send, started, stream, raw):
        left = self.deadline - (time.monotonic() - started)
        timeout = (CONNECT_TIMEOUT, max(0.5, min(self.read_timeout, left)))
        t0 = time.monotonic()
        errcode = protocol.OK
        try:
            response = send(timeout)
        except requests.RequestException as exc:
            _log_call(path, "unreachable", t0, type(exc).__name__)
            raise WeChatError(None, f"WeChat unreachable ({type(exc).__name__})", path) from None
        try:
            if response.status_code >= 400:
                raise WeChatError(None, f"WeChat answered HTTP {response.status_code}", path)
            if stream and not _is_json(response):
                return response
            data = _decode(response, path)
            errcode = data.get("errcode", 0)
            if errcode != protocol.OK:
                raise WeChatError(errcode, str(data.get("errmsg", ""))[:200], path)
            return response if raw else data
        except WeChatError as exc:
            errcode = exc.errcode if exc.errcode is not None else response.status_code
            response.close()
            raise
        finally:
            _log_call(path, errcode, t0)


def _is_json(response):
    ctype = response.headers.get("Content-Type", "")
    return "json" in ctype or "text/plain" in ctype


def _decode(response, path):
    try:
        data = response.json()
    except ValueError:
        raise WeChatError(None, "WeChat answered something that is not JSON", path) from None
    if not isinstance(data, dict):
        raise WeChatError(None, "WeChat answered unexpected JSON", path)
    if "errcode" in data:
        try:
            data["errcode"] = int(data["errcode"])
        except (TypeError, ValueError):
            raise WeChatError(None, "WeChat answered a malformed errcode", path) from None
    return data


def _log_call(path, errcode, t0, note=""):
    # Only the path: query strings carry secrets, tokens and codes.
    ms = (time.monotonic() - t0) * 1000
    log.info("wechat %s errcode=%s %.0fms %s", path, errcode, ms, note)
