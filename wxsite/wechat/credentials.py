"""Global credentials (access_token, jsapi_ticket) shared by every process, fetched once.

Three layers, cheapest first:
1. a per-process memory cache, so a page render touches neither the store nor WeChat. It
   is compared with the store every few seconds (one read, never a write), so a value
   replaced by another worker, another host or an operator reaches every worker quickly;
2. the shared store (SQLite table or Redis), read by every worker and host;
3. WeChat itself, called by exactly one process at a time: the holder of a lease in the
   store (single flight). The lease outlasts one WeChat call's whole deadline; a holder
   that dies loses it when it expires, and a holder whose lease was taken over can no
   longer save, so it cannot overwrite a newer value.

While a stored value is unexpired it is served, even when refreshing it ahead of expiry
fails: the failure is logged and retried later. Failures no retry fixes soon (wrong
secret, IP whitelist, quota) are remembered for a while, so workers don't burn the quota.
"""

import itertools
import logging
import os
import secrets
import threading
import time
from dataclasses import dataclass
from typing import Protocol

from . import protocol
from .errors import WeChatError

log = logging.getLogger("wxsite.wechat")

#: Seconds a value in memory is trusted before it is compared with the store again.
REVALIDATE_EVERY = 5.0
#: Seconds a lease lasts beyond one WeChat call's deadline: the store round trips around
#: the call (SQLite may wait its busy timeout) must fit too.
LEASE_MARGIN = 5.0
#: Seconds until another try after a refresh ahead of expiry failed for a passing reason.
REFRESH_RETRY = 30.0
#: Seconds a failure no retry fixes soon (wrong secret, IP whitelist, quota) is remembered.
ERROR_BACKOFF = 60.0
#: Seconds between two re-fetches of a value pages report WeChat refused (all workers).
RECHECK_EVERY = 180.0
#: Failures that belong to the host that met them: 40164 names this host's outbound IP,
#: which another host's may be in the whitelist. Remembered in this process only.
HOST_ONLY = frozenset({protocol.IP_NOT_WHITELISTED})
#: Store row remembering failures of the code exchange (sns/oauth2/access_token).
CODE_EXCHANGE = "code_exchange"
#: stable_token's force_refresh: WeChat allows 20 a day, 30 s apart (for a leaked token).
FORCE_DAILY = 20
FORCE_SPACING = 30.0
#: WeChat's daily quotas restart at midnight China time (UTC+8).
CHINA_OFFSET = 8 * 3600


def china_day_end(now):
    """Return the epoch second at which the China day holding ``now`` ends."""
    return (now + CHINA_OFFSET) // 86400 * 86400 + 86400 - CHINA_OFFSET


@dataclass
class Credential:
    """A stored credential (value may be None while only a lease or an error is kept)."""

    value: str | None
    expires_at: float
    error_code: int | None = None
    error_until: float = 0.0


@dataclass
class _Cached:
    value: str
    expires_at: float
    checked_at: float


class ForceRefused(Exception):
    """A forced refresh was refused here, before WeChat was called (spacing or daily count)."""

    def __init__(self, message, retry_in):
        super().__init__(message)
        self.retry_in = retry_in


class _LeaseLost(Exception):
    """Another holder took the lease over while this one was getting ready to call."""


class _DependencyFailed(Exception):
    """The credential this fetch needs (the ticket's access_token) could not be had."""

    def __init__(self, error):
        super().__init__(str(error))
        self.error = error


class CredentialStore(Protocol):
    """What a ``CredentialManager`` needs of the store every worker and host shares.

    Implemented over SQL (``wxsite.store.credentials``) and Redis (``wxsite.store.redis_credentials``);
    times are epoch seconds, ``owner`` names one fetch's lease holder.
    """

    def read(self, appid, kind) -> "Credential | None":
        """Return the stored value with its expiry and any remembered failure."""

    def acquire(self, appid, kind, owner, now, until) -> bool:
        """Take the fetch lease if nobody holds an unexpired one."""

    def renew(self, appid, kind, owner, now, until) -> bool:
        """Extend ``owner``'s lease; False if another holder took it."""

    def save(self, appid, kind, owner, value, expires_at) -> bool:
        """Store a fresh value and release the lease; False if the lease was taken over."""

    def release(self, appid, kind, owner) -> None:
        """Give the lease back without a new value."""

    def fail(self, appid, kind, owner, error_code, error_until) -> None:
        """Release the lease and remember a failure other workers should not repeat."""

    def note_failure(self, appid, kind, error_code, error_until) -> None:
        """Remember a failure of a call made without a lease (the code exchange)."""

    def invalidate(self, appid, kind, value) -> None:
        """Drop ``value`` if it is still the stored one."""

    def recheck(self, appid, kind, value, now, until) -> bool:
        """Open a re-check window and drop ``value``; False while one is open."""

    def claim_force(self, appid, kind, now, spacing, daily, day_end) -> bool:
        """Count one forced refresh if ``spacing`` passed and fewer than ``daily`` today."""

    def forget(self, appid, kind) -> None:
        """Delete everything stored for ``kind``."""


class CredentialManager:
    """Hand out fresh credentials of one appid, fetching each at most once at a time.

    ``fetchers`` maps a kind ("access_token", "jsapi_ticket") to a function returning
    ``(value, expires_in)`` after exactly one WeChat call; ``requires`` maps a kind to the
    kind its fetcher takes as argument (the ticket needs an access_token), so that the
    lease covers one call and a stale dependency is dropped and retried once. ``deadline``
    is one call's total budget (the lease is derived from it). ``paths`` names the WeChat
    path behind each kind, for errors remembered from another worker. ``store``
    is a ``CredentialStore``; None shares nothing (the OAuth dialect's tests).
    """

    def __init__(
        self,
        appid,
        store,
        fetchers,
        clock=time.time,
        refresh_ahead=300,
        deadline=15.0,
        lease_margin=LEASE_MARGIN,
        wait=None,
        poll=0.05,
        error_backoff=ERROR_BACKOFF,
        refresh_retry=REFRESH_RETRY,
        revalidate=REVALIDATE_EVERY,
        recheck_every=RECHECK_EVERY,
        requires=None,
        paths=None,
    ):
        self.appid = appid
        self.store = store
        self.fetchers = fetchers
        self.clock = clock
        self.refresh_ahead = refresh_ahead
        # A lease shorter than the call it covers would let a second fetch start alongside.
        self.lease = deadline + lease_margin
        # A live holder answers within its deadline; waiting longer would only move a dead
        # holder's cost from a 503 to a gunicorn worker timeout.
        self.wait = deadline + 1 if wait is None else wait
        self.poll = poll
        self.error_backoff = error_backoff
        self.refresh_retry = refresh_retry
        self.revalidate = revalidate
        self.recheck_every = recheck_every
        self.requires = requires or {}
        self.paths = paths or {}
        self._memory = {}
        self._host_failures = {}  # kind -> (errcode, until): what HOST_ONLY keeps here
        self._lock = threading.Lock()
        self._owner = f"{os.getpid()}-{secrets.token_hex(4)}"
        self._leases = itertools.count(1)

    # -- the hot path ---------------------------------------------------------------

    def get(self, kind):
        """Return a valid credential of ``kind``, fetching it if no process has one."""
        now = self.clock()
        cached = self._memory.get(kind)
        if cached and now < cached.expires_at - self.refresh_ahead:
            if 0 <= now - cached.checked_at < self.revalidate:
                return cached.value
            value = self._revalidate(kind, cached, now)
            if value is not None:
                return value
        return self._get_shared(kind)

    def _revalidate(self, kind, cached, now):
        try:
            row = self.store.read(self.appid, kind)
        except Exception as exc:  # noqa: BLE001 - whatever the store raises, see below
            # The store is down or busy but this value has not expired: keep serving it. A
            # fetch of our own is what the shared store exists to prevent.
            log.warning("re-validating %s failed (%s); serving it from memory", kind, _name(exc))
            cached.checked_at = now
            return cached.value
        if row and row.value and now < row.expires_at - self.refresh_ahead:
            if (row.value, row.expires_at) == (cached.value, cached.expires_at):
                cached.checked_at = now
                return cached.value
            return self._remember(kind, row)  # replaced elsewhere: every worker follows
        return None  # dropped or due for refresh in the store: take the shared path

    # -- operators and pages ----------------------------------------------------------

    def refresh(self, kind):
        """Drop the current value and fetch a new one (operators: `wx token --refresh`)."""
        self.invalidate(kind, self.get(kind))
        return self.get(kind)

    def force_refresh(self, kind, fetch):
        """Replace the shared ``kind`` with ``fetch()``'s new value (stable_token force_refresh).

        Counted in the store against WeChat's limits (20 a China day, 30 s apart) for every
        host; refused here without a WeChat call when over them. The fetch holds the
        single-flight lease, so no worker fetches alongside; the others' memory follows the
        store within ``revalidate`` seconds, and a worker using the retired value meanwhile
        gets 40001, drops it and reads the new one.
        """
        owner = self._wait_for_lease(kind)
        try:
            now = self.clock()
            if not self.store.claim_force(
                self.appid, kind, now, FORCE_SPACING, FORCE_DAILY, china_day_end(now)
            ):
                raise self._force_refused(kind, now)
            value, expires_in = fetch()
        except BaseException:
            self.store.release(self.appid, kind, owner)
            raise
        expires_at = self.clock() + int(expires_in)
        if not self.store.save(self.appid, kind, owner, value, expires_at):
            # Whoever took the lease over fetched after WeChat rotated: the same new value.
            log.warning("forced a new %s after losing the lease; the stored one stays", kind)
        log.warning("forced a new %s for %s; the previous one is retired", kind, self.appid)
        return self._remember(kind, Credential(value, expires_at))

    def force_status(self, kind):
        """Return ``{"today": n, "limit": 20, "last": epoch or None}`` of forced refreshes."""
        row = self.store.read(self.appid, kind + ":force")
        now = self.clock()
        if not row or not row.expires_at:
            return {"today": 0, "limit": FORCE_DAILY, "last": None}
        today = (row.error_code or 0) if now < row.error_until else 0
        return {"today": today, "limit": FORCE_DAILY, "last": row.expires_at}

    def _force_refused(self, kind, now):
        status = self.force_status(kind)
        if status["last"] is not None and now - status["last"] < FORCE_SPACING:
            wait = FORCE_SPACING - (now - status["last"])
            return ForceRefused(
                f"the last forced {kind} refresh was {now - status['last']:.0f} s ago; "
                f"WeChat allows one every {FORCE_SPACING:.0f} s: try again in {wait:.0f} s",
                wait,
            )
        wait = china_day_end(now) - now
        return ForceRefused(
            f"{status['today']} forced {kind} refreshes today, WeChat allows {FORCE_DAILY} a "
            f"day: the count restarts at midnight China time (UTC+8), in {wait / 3600:.1f} h",
            wait,
        )

    def _wait_for_lease(self, kind):
        give_up = time.monotonic() + self.wait
        while True:
            now = self.clock()
            owner = f"{self._owner}-{next(self._leases)}"
            if self.store.acquire(self.appid, kind, owner, now, now + self.lease):
                return owner
            if time.monotonic() > give_up:
                raise WeChatError(None, "timed out waiting for another worker's fetch", kind)
            time.sleep(self.poll)

    def invalidate(self, kind, value):
        """Forget ``value`` everywhere, but only if it is still the current one."""
        self._drop_memory(kind, value)
        self.store.invalidate(self.appid, kind, value)

    def stored(self, kind):
        """Return the shared value if unexpired, else None: no WeChat call, no write."""
        row = self.store.read(self.appid, kind)
        if row and row.value and self.clock() < row.expires_at:
            return row.value
        return None

    def status(self, kind):
        """Return ``{"cached": bool, "expires_in": s}`` without the value or a WeChat call."""
        row = self.store.read(self.appid, kind)
        now = self.clock()
        if not row or not row.value or row.expires_at <= now:
            return {"cached": False, "expires_in": 0}
        return {"cached": True, "expires_in": int(row.expires_at - now)}

    def recheck(self, kind, refused=None):
        """Return the value to use after a page reported that WeChat refused ``refused``."""
        # Memory follows the store first (another worker may have replaced the value). A
        # refused value still shared is dropped and fetched anew at most once per
        # recheck_every for all workers and hosts, so reports cannot spend WeChat's quota.
        now = self.clock()
        row = self.store.read(self.appid, kind)
        if row and row.value and now < row.expires_at:
            if refused is None or row.value != refused:
                return self._remember(kind, row)
            if self.store.recheck(self.appid, kind, refused, now, now + self.recheck_every):
                log.warning("a page reported WeChat refused the shared %s; fetching anew", kind)
            else:
                # Rechecked a moment ago: the claim's winner dropped the value, or it
                # fetched this very value and WeChat still refuses it (nothing to retry).
                row = self.store.read(self.appid, kind)
                if row and row.value and self.clock() < row.expires_at:
                    return self._remember(kind, row)
        self._drop_memory(kind)
        return self.get(kind)

    def forget(self):
        """Drop every stored credential, lease and remembered failure of this appid."""
        for kind in [*self.fetchers, CODE_EXCHANGE]:
            self._drop_memory(kind)
            self.store.forget(self.appid, kind)

    # -- failures of calls made elsewhere (the code exchange) ---------------------------

    def check_remembered(self, kind):
        """Raise the lasting failure some worker met on ``kind`` lately, if any."""
        if self.store is None:
            return
        failed = self._host_failure(kind)
        if failed:
            raise failed
        row = self.store.read(self.appid, kind)
        if row and self.clock() < row.error_until:
            raise self._remembered(kind, row)

    def remember_failure(self, kind, exc):
        """Share a failure no retry fixes soon, so that no worker repeats the call for a while."""
        if self.store is not None and exc.lasting:
            until = self.clock() + self.error_backoff
            if exc.errcode in HOST_ONLY:
                self._host_failures[kind] = (exc.errcode, until)
            else:
                self.store.note_failure(self.appid, kind, exc.errcode, until)

    def _host_failure(self, kind):
        """Return this host's own recent failure of ``kind`` as an error, or None."""
        errcode, until = self._host_failures.get(kind, (None, 0))
        if self.clock() >= until:
            return None
        path = self.paths.get(kind, kind)
        return WeChatError(errcode, "failed recently on this host, not retried yet", path)

    # -- the shared path ----------------------------------------------------------------

    def _get_shared(self, kind):
        give_up = time.monotonic() + self.wait
        while True:
            now = self.clock()
            row = self.store.read(self.appid, kind)
            valid = bool(row and row.value and now < row.expires_at)
            if valid and now < row.expires_at - self.refresh_ahead:
                return self._remember(kind, row)
            failed = self._host_failure(kind)
            if failed:
                if valid:
                    return row.value  # this host's refresh failed lately; retried later
                raise failed
            if row and now < row.error_until:
                if valid:
                    return row.value  # a refresh failed lately; it is retried later
                # Another process just failed for a reason no retry fixes: don't hammer WeChat.
                raise self._remembered(kind, row)
            owner = f"{self._owner}-{next(self._leases)}"
            if self.store.acquire(self.appid, kind, owner, now, now + self.lease):
                return self._fetch(kind, owner, row if valid else None)
            if valid:
                # Someone is refreshing ahead of expiry; the current value still works.
                return row.value
            if time.monotonic() > give_up:
                raise WeChatError(None, "timed out waiting for another worker's fetch", kind)
            time.sleep(self.poll)

    def _fetch(self, kind, owner, current):
        try:
            # Double-check: the lease may have been won just after another holder saved.
            row = self.store.read(self.appid, kind)
            now = self.clock()
            if row and row.value and now < row.expires_at - self.refresh_ahead:
                self.store.release(self.appid, kind, owner)
                return self._remember(kind, row)
            value, expires_in = self._call(kind, owner)
        except WeChatError as exc:
            return self._failed(kind, owner, exc, current)
        except _DependencyFailed as failed:
            # The dependency remembers its own failure; this row only waits a little.
            return self._failed(kind, owner, failed.error, current, own=False)
        except _LeaseLost:
            log.warning("lost the %s lease before calling WeChat; not fetching", kind)
            return current.value if current else self._get_shared(kind)
        except BaseException:
            self.store.release(self.appid, kind, owner)
            raise
        expires_at = self.clock() + int(expires_in)
        if not self.store.save(self.appid, kind, owner, value, expires_at):
            # Our lease expired and another holder took it over (and may have saved a newer
            # value): ours must not overwrite it. Follow the store when it has a value.
            log.warning("fetched %s after losing the lease; keeping the stored one", kind)
            row = self.store.read(self.appid, kind)
            if row and row.value and self.clock() < row.expires_at:
                return self._remember(kind, row)
            return value
        log.info("fetched %s for %s, valid %ss", kind, self.appid, expires_in)
        now = self.clock()
        if now >= expires_at - self.refresh_ahead:
            # Already due (stable_token hands back the same token, with what is left of its
            # life, until it expires): asking again on every page would only spend quota.
            self.store.note_failure(
                self.appid, kind, None, min(now + self.refresh_retry, expires_at)
            )
        return self._remember(kind, Credential(value, expires_at))

    def _call(self, kind, owner):
        fetch = self.fetchers[kind]
        needs = self.requires.get(kind)
        if needs is None:
            return fetch()
        for attempt in range(2):
            try:
                argument = self.get(needs)
            except WeChatError as exc:
                raise _DependencyFailed(exc) from None
            # Getting the dependency may have taken a while (its own fetch, or waiting for
            # another worker's): the lease must still be ours and last for the whole call.
            now = self.clock()
            if not self.store.renew(self.appid, kind, owner, now, now + self.lease):
                raise _LeaseLost()
            try:
                return fetch(argument)
            except WeChatError as exc:
                if attempt or not exc.credential_invalid:
                    raise
                # The access_token went stale (another party refreshed it): drop it if it is
                # still the stored one, fetch it once more, and retry once.
                self.invalidate(needs, argument)

    def _failed(self, kind, owner, exc, current, own=True):
        now = self.clock()
        lasting = own and exc.lasting
        until = now + (self.error_backoff if exc.lasting else self.refresh_retry)
        if current and not lasting:
            until = min(until, current.expires_at)  # once expired, a retry is due at once
        elif not current and not lasting:
            until = 0  # nothing to serve meanwhile: the next request may try again
        if exc.errcode in HOST_ONLY:
            # Other hosts may be whitelisted: keep the wait here, and let them fetch.
            self._host_failures[kind] = (exc.errcode, until)
            self.store.release(self.appid, kind, owner)
        elif own or current:
            self.store.fail(self.appid, kind, owner, exc.errcode, until)
        else:
            self.store.release(self.appid, kind, owner)
        why = exc.hint or f"errcode={exc.errcode} {exc.errmsg}"
        if current:
            level = logging.ERROR if exc.hint else logging.WARNING
            log.log(
                level,
                "refreshing %s ahead of expiry failed (%s); serving the stored one, "
                "valid %ds more, next try in %ds",
                kind,
                why,
                current.expires_at - now,
                max(0, until - now),
            )
            return current.value
        if exc.hint:
            log.error("fetching %s failed: %s", kind, exc.hint)
        raise exc

    def _remembered(self, kind, row):
        # Name the WeChat path that failed: whether 40001 means a wrong secret depends on it.
        path = self.paths.get(kind, kind)
        return WeChatError(row.error_code, "failed recently, not retried yet", path)

    def _remember(self, kind, row):
        with self._lock:
            self._memory[kind] = _Cached(row.value, row.expires_at, self.clock())
        return row.value

    def _drop_memory(self, kind, value=None):
        with self._lock:
            cached = self._memory.get(kind)
            if cached and (value is None or cached.value == value):
                del self._memory[kind]


def _name(exc):
    return type(exc).__name__
