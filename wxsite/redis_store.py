"""A Redis credential store, for several hosts sharing one access_token and jsapi_ticket.

Same contract as ``store.CredentialStore`` (read/acquire/save/release/fail/invalidate);
chosen with WXSITE_REDIS_URL. The lease is a ``SET NX PX`` key, so a holder that dies
loses it when it expires. Short socket timeouts: a stalled Redis costs a page a second,
never a worker, and surfaces as a 503 (``StoreUnavailable``), not as an uncoordinated
fetch by every worker.
"""

import redis

from .wechat.credentials import Credential
from .wechat.errors import WeChatError

# Compare-and-delete / compare-and-clear, so a late holder cannot undo a newer one.
_RELEASE = (
    "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"
)
_INVALIDATE = (
    "if redis.call('hget', KEYS[1], 'value') == ARGV[1] then "
    "redis.call('hdel', KEYS[1], 'value'); redis.call('hset', KEYS[1], 'expires_at', 0) end return 0"
)


class StoreUnavailable(WeChatError):
    """The shared credential store did not answer in time."""

    def __init__(self, exc):
        super().__init__(None, f"credential store unavailable ({type(exc).__name__})", "redis")


class RedisCredentialStore:
    """Credentials and their fetch lease in Redis, under ``wxsite:cred:<appid>:<kind>``."""

    def __init__(self, url, prefix="wxsite:cred", timeout=1.0):
        self.redis = redis.Redis.from_url(
            url, socket_timeout=timeout, socket_connect_timeout=timeout, decode_responses=True
        )
        self.prefix = prefix
        self._release = self.redis.register_script(_RELEASE)
        self._invalidate = self.redis.register_script(_INVALIDATE)

    def _key(self, appid, kind):
        return f"{self.prefix}:{appid}:{kind}"

    def _call(self, fn, *args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except redis.RedisError as exc:
            raise StoreUnavailable(exc) from None

    def read(self, appid, kind):
        """Return the stored ``Credential`` or None."""
        row = self._call(self.redis.hgetall, self._key(appid, kind))
        if not row:
            return None
        return Credential(
            row.get("value") or None,
            float(row.get("expires_at") or 0),
            int(row["error_code"]) if row.get("error_code") else None,
            float(row.get("error_until") or 0),
        )

    def acquire(self, appid, kind, owner, now, until):
        """Take the fetch lease if free; return True if taken."""
        ttl_ms = max(1, int((until - now) * 1000))
        lease = self._key(appid, kind) + ":lease"
        return bool(self._call(self.redis.set, lease, owner, nx=True, px=ttl_ms))

    def save(self, appid, kind, owner, value, expires_at):
        """Store a fresh value and release the lease."""
        key = self._key(appid, kind)
        mapping = {"value": value, "expires_at": expires_at, "error_code": "", "error_until": 0}
        self._call(self.redis.hset, key, mapping=mapping)
        self.release(appid, kind, owner)

    def release(self, appid, kind, owner):
        """Give the lease back if we still hold it."""
        self._call(self._release, keys=[self._key(appid, kind) + ":lease"], args=[owner])

    def fail(self, appid, kind, owner, error_code, error_until):
        """Remember a failure other workers should not repeat, and release the lease."""
        mapping = {"error_code": error_code or "", "error_until": error_until}
        self._call(self.redis.hset, self._key(appid, kind), mapping=mapping)
        self.release(appid, kind, owner)

    def invalidate(self, appid, kind, value):
        """Drop ``value`` if it is still the stored one."""
        self._call(self._invalidate, keys=[self._key(appid, kind)], args=[value])

    def statuses(self):
        """Return ``{(appid, kind): expires_at}`` of stored values (never the values)."""
        out = {}
        for key in self._call(self.redis.scan_iter, f"{self.prefix}:*"):
            if key.endswith(":lease"):
                continue
            row = self._call(self.redis.hgetall, key)
            if row.get("value"):
                _, _, appid, kind = key.rsplit(":", 3)
                out[(appid, kind)] = float(row.get("expires_at") or 0)
        return out
