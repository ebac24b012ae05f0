"""Global credentials (access_token, jsapi_ticket) shared by every process, fetched once.

Three layers, cheapest first:
1. a per-process memory cache, so a page render touches neither SQLite nor WeChat;
2. the shared store (SQLite table, or Redis later), read by every worker and host;
3. WeChat itself, called by exactly one process at a time: the holder of a lease in the
   store (single flight). A holder that dies loses its lease when it expires.
"""

import logging
import os
import secrets
import threading
import time
from dataclasses import dataclass

from .errors import WeChatError

log = logging.getLogger("wxsite.wechat")


@dataclass
class Credential:
    """A stored credential (value may be None while only a lease or an error is kept)."""

    value: str | None
    expires_at: float
    error_code: int | None = None
    error_until: float = 0.0


class CredentialManager:
    """Hand out fresh credentials of one appid, fetching each at most once at a time.

    ``fetchers`` maps a kind ("access_token", "jsapi_ticket") to a function returning
    ``(value, expires_in)``. ``store`` implements ``read``, ``acquire``, ``save``,
    ``fail`` and ``invalidate`` (see ``wxsite.store.credentials.CredentialStore``).
    """

    def __init__(
        self,
        appid,
        store,
        fetchers,
        clock=time.time,
        refresh_ahead=300,
        lease=20,
        wait=12,
        poll=0.05,
        error_backoff=60,
    ):
        self.appid = appid
        self.store = store
        self.fetchers = fetchers
        self.clock = clock
        self.refresh_ahead = refresh_ahead
        self.lease = lease
        self.wait = wait
        self.poll = poll
        self.error_backoff = error_backoff
        self._memory = {}
        self._lock = threading.Lock()
        self._owner = f"{os.getpid()}-{secrets.token_hex(4)}"

    def get(self, kind):
        """Return a valid credential of ``kind``, fetching it if no process has one."""
        now = self.clock()
        cached = self._memory.get(kind)
        if cached and now < cached.expires_at - self.refresh_ahead:
            return cached.value
        return self._get_shared(kind)

    def refresh(self, kind):
        """Drop the current value and fetch a new one (operators: `wx token --refresh`)."""
        self.invalidate(kind, self.get(kind))
        return self.get(kind)

    def invalidate(self, kind, value):
        """Forget ``value`` everywhere, but only if it is still the current one."""
        with self._lock:
            cached = self._memory.get(kind)
            if cached and cached.value == value:
                del self._memory[kind]
        self.store.invalidate(self.appid, kind, value)

    def status(self, kind):
        """Return ``{"cached": bool, "expires_in": s}`` without the value or a WeChat call."""
        row = self.store.read(self.appid, kind)
        now = self.clock()
        if not row or not row.value or row.expires_at <= now:
            return {"cached": False, "expires_in": 0}
        return {"cached": True, "expires_in": int(row.expires_at - now)}

    def _get_shared(self, kind):
        give_up = time.monotonic() + self.wait
        while True:
            now = self.clock()
            row = self.store.read(self.appid, kind)
            if row and row.value and now < row.expires_at - self.refresh_ahead:
                return self._remember(kind, row)
            if row and row.error_code and now < row.error_until:
                # Another process just failed for a reason no retry fixes: don't hammer WeChat.
                raise WeChatError(row.error_code, "credential fetch failed recently", kind)
            still_valid = row and row.value and now < row.expires_at
            if self.store.acquire(self.appid, kind, self._owner, now, now + self.lease):
                return self._fetch(kind)
            if still_valid:
                # Someone is refreshing ahead of expiry; the current value still works.
                return row.value
            if time.monotonic() > give_up:
                raise WeChatError(None, "timed out waiting for another worker's fetch", kind)
            time.sleep(self.poll)

    def _fetch(self, kind):
        try:
            # Double-check: the lease may have been won just after another holder saved.
            row = self.store.read(self.appid, kind)
            now = self.clock()
            if row and row.value and now < row.expires_at - self.refresh_ahead:
                self.store.release(self.appid, kind, self._owner)
                return self._remember(kind, row)
            value, expires_in = self.fetchers[kind]()
        except WeChatError as exc:
            until = (
                self.clock() + self.error_backoff
                if exc.misconfigured or exc.errcode == 45009
                else 0
            )
            self.store.fail(self.appid, kind, self._owner, exc.errcode, until)
            if exc.hint:
                log.error("fetching %s failed: %s", kind, exc.hint)
            raise
        except BaseException:
            self.store.release(self.appid, kind, self._owner)
            raise
        row = Credential(value, self.clock() + int(expires_in))
        self.store.save(self.appid, kind, self._owner, row.value, row.expires_at)
        log.info("fetched %s for %s, valid %ss", kind, self.appid, expires_in)
        return self._remember(kind, row)

    def _remember(self, kind, row):
        with self._lock:
            self._memory[kind] = Credential(row.value, row.expires_at)
        return row.value
