"""HTTP to WeChat: timeouts on every call, errcode detection, bounded retries, safe logs.

Every call has a total wall-clock budget (``deadline``, retries included) that also holds
in the middle of a read: the session's connections parse their responses through
``_DeadlineResponse``, which before each ``recv`` sets the socket's timeout to what is left
of the budget. A server that sends a byte a second therefore ends the call at its
deadline instead of keeping a gunicorn thread for as long as it likes; per-recv read
timeouts alone never fire against such a drip. No watchdog thread: the socket that
blocks is only ever touched by the thread that reads it.
"""

import contextlib
import http.client
import io
import logging
import os
import random
import threading
import time

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.poolmanager import ProxyManager

from . import protocol
from .errors import WeChatError

log = logging.getLogger("wxsite.wechat")

CONNECT_TIMEOUT = 3.05
#: An attempt needs at least this many seconds of its budget left to be started.
MIN_TIMEOUT = 0.1

# The _Budget of the call this thread is making; a response takes it when its connection
# starts parsing it, so a streamed body read later stays bound by it.
_current = threading.local()


class _Budget:
    """The end of one call's budget; mutable so a caller may shorten it mid-download."""

    def __init__(self, deadline):
        self.deadline = deadline

    def left(self):
        """Return the seconds left (negative once the budget is spent)."""
        return self.deadline - time.monotonic()


class _DeadlineReader(io.RawIOBase):
    """The socket's reader, with each ``recv`` bounded by what is left of the budget."""

    def __init__(self, fp, sock, budget):
        super().__init__()
        # Keep http.client's own file: it holds the socket's io reference, so a
        # "Connection: close" answer does not close the socket under this reader.
        self._fp = fp
        self._raw = fp.raw
        self._sock = sock
        self._budget = budget

    def readable(self):
        return True

    def readinto(self, buffer):
        left = self._budget.left()
        if left <= 0:
            raise TimeoutError("WeChat call deadline passed")
        timeout = self._sock.gettimeout()
        self._sock.settimeout(left if timeout is None else min(timeout, left))
        try:
            return self._raw.readinto(buffer)
        finally:
            # Pooled connections are reused: leave the timeout urllib3 set.
            self._sock.settimeout(timeout)

    def close(self):
        if not self.closed:
            self._fp.close()
        super().close()


class _DeadlineResponse(http.client.HTTPResponse):
    """``http.client``'s response, reading status line, headers and body within the budget."""

    def __init__(self, sock, *args, **kwargs):
        super().__init__(sock, *args, **kwargs)
        self.budget = getattr(_current, "budget", None)
        if self.budget is not None:
            self.fp = io.BufferedReader(_DeadlineReader(self.fp, sock, self.budget))


class _DeadlineHTTPConnection(HTTPConnection):
    response_class = _DeadlineResponse


class _DeadlineHTTPSConnection(HTTPSConnection):
    response_class = _DeadlineResponse


class _DeadlineHTTPConnectionPool(HTTPConnectionPool):
    ConnectionCls = _DeadlineHTTPConnection


class _DeadlineHTTPSConnectionPool(HTTPSConnectionPool):
    ConnectionCls = _DeadlineHTTPSConnection


_POOL_CLASSES = {"http": _DeadlineHTTPConnectionPool, "https": _DeadlineHTTPSConnectionPool}


class DeadlineAdapter(HTTPAdapter):
    """A requests adapter whose connections hold each call's budget in mid-read."""

    def init_poolmanager(self, *args, **kwargs):
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = dict(_POOL_CLASSES)

    def proxy_manager_for(self, proxy, **proxy_kwargs):
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        # SOCKS managers bring their own pools (and sockets); only HTTP(S) proxies are covered.
        if type(manager) is ProxyManager:
            manager.pool_classes_by_scheme = dict(_POOL_CLASSES)
        return manager


@contextlib.contextmanager
def within(seconds):
    """Bound every read made in this block through a mounted session by ``seconds`` in all.

    For callers outside the Transport, e.g. a client with its own session mounted with
    ``Transport.mount``; reads past the budget raise ``requests``' timeout errors.
    """
    with _holding(_Budget(time.monotonic() + seconds)) as budget:
        yield budget


@contextlib.contextmanager
def _holding(budget):
    outer, _current.budget = getattr(_current, "budget", None), budget
    try:
        yield budget
    finally:
        _current.budget = outer


def shorten_deadline(response, deadline):
    """Make ``response``'s remaining reads end by ``deadline`` (``time.monotonic()``) too.

    Returns False when the response was not read through a Transport (then only the
    caller's own checks between reads hold).
    """
    budget = getattr(response, "wx_budget", None)
    if budget is None:
        return False
    budget.deadline = min(budget.deadline, deadline)
    return True


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
                self._session = self.mount(requests.Session())
                self._session.headers["User-Agent"] = "wxsite"
                self._pid = os.getpid()
            return self._session

    @staticmethod
    def mount(session):
        """Give ``session`` (e.g. Authlib's) the adapter that holds the deadline mid-read.

        ``send`` bounds reads only for sessions mounted this way; others get per-recv
        timeouts and the checks between attempts.
        """
        session.mount("https://", DeadlineAdapter())
        session.mount("http://", DeadlineAdapter())
        return session

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
        budget = _Budget(time.monotonic() + self.deadline)
        attempt = 0
        while True:
            try:
                return self._once(path, send, budget, stream, raw)
            except WeChatError as exc:
                retryable = exc.unavailable or exc.errcode in protocol.RETRY_ERRCODES
                pause = self.backoff * (2**attempt) * (0.5 + random.random())
                if not retryable or attempt >= self.retries or budget.left() < pause + 1:
                    raise
                attempt += 1
                time.sleep(pause)

    def _once(self, path, send, budget, stream, raw):
        left = budget.left()
        if left < MIN_TIMEOUT:
            _log_call(path, "unreachable", time.monotonic(), "deadline")
            raise WeChatError(None, "WeChat call deadline passed", path)
        timeout = (min(CONNECT_TIMEOUT, left), min(self.read_timeout, left))
        t0 = time.monotonic()
        errcode = protocol.OK
        try:
            with _holding(budget):
                response = send(timeout)
        except requests.RequestException as exc:
            if budget.left() <= 0:
                _log_call(path, "unreachable", t0, "deadline")
                raise WeChatError(None, "WeChat too slow (call deadline passed)", path) from None
            _log_call(path, "unreachable", t0, type(exc).__name__)
            raise WeChatError(None, f"WeChat unreachable ({type(exc).__name__})", path) from None
        # A streamed body is read later, by the caller, still within this budget.
        response.wx_budget = budget
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
    except requests.RequestException as exc:
        # A streamed call's JSON error body is read here, after the call returned.
        raise WeChatError(None, f"WeChat answer broke off ({type(exc).__name__})", path) from None
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
