"""A Redis credential store, for several hosts sharing one access_token and jsapi_ticket.

Same contract as ``store.CredentialStore`` (read/acquire/renew/save/release/fail/
note_failure/invalidate/recheck/claim_force/forget); chosen with WXSITE_REDIS_URL. The lease is a
``SET NX PX`` key, so a holder that dies loses it when it expires; the hash also records
``lease_owner``, the last holder granted a lease, which only changes when another one
acquires: a holder whose lease expired may save only if nobody took over (as in SQLite).
Short socket timeouts: a stalled Redis costs a page a second, never a worker, and
surfaces as a 503 (``StoreUnavailable``), not as an uncoordinated fetch by every worker.
"""

import redis

from ..wechat.credentials import Credential
from ..wechat.errors import WeChatError

# Every script below compares before it writes, so a late holder cannot undo a newer one.
# KEYS[1] the hash, KEYS[2] its lease key; ARGV[1] the owner.
_ACQUIRE = """
if redis.call('set', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then
  redis.call('hset', KEYS[1], 'lease_owner', ARGV[1])
  return 1
end
return 0
"""
_RENEW = """
if redis.call('hget', KEYS[1], 'lease_owner') ~= ARGV[1] then return 0 end
local holder = redis.call('get', KEYS[2])
if holder and holder ~= ARGV[1] then return 0 end
redis.call('set', KEYS[2], ARGV[1], 'PX', ARGV[2])
return 1
"""
_SAVE = """
if redis.call('hget', KEYS[1], 'lease_owner') ~= ARGV[1] then return 0 end
redis.call('hset', KEYS[1], 'value', ARGV[2], 'expires_at', ARGV[3], 'error_code', '',
  'error_until', 0)
redis.call('hdel', KEYS[1], 'lease_owner')
if redis.call('get', KEYS[2]) == ARGV[1] then redis.call('del', KEYS[2]) end
return 1
"""
_RELEASE = """
if redis.call('hget', KEYS[1], 'lease_owner') == ARGV[1] then
  redis.call('hdel', KEYS[1], 'lease_owner')
end
if redis.call('get', KEYS[2]) == ARGV[1] then return redis.call('del', KEYS[2]) end
return 0
"""
_FAIL = """
if redis.call('hget', KEYS[1], 'lease_owner') ~= ARGV[1] then return 0 end
redis.call('hset', KEYS[1], 'error_code', ARGV[2], 'error_until', ARGV[3])
redis.call('hdel', KEYS[1], 'lease_owner')
if redis.call('get', KEYS[2]) == ARGV[1] then redis.call('del', KEYS[2]) end
return 1
"""
_INVALIDATE = (
    "if redis.call('hget', KEYS[1], 'value') == ARGV[1] then "
    "redis.call('hdel', KEYS[1], 'value'); redis.call('hset', KEYS[1], 'expires_at', 0) end return 0"
)
# KEYS[1] the hash, KEYS[2] the re-check window key; ARGV[1] the refused value.
_RECHECK = """
if not redis.call('set', KEYS[2], '1', 'NX', 'PX', ARGV[2]) then return 0 end
if redis.call('hget', KEYS[1], 'value') == ARGV[1] then
  redis.call('hdel', KEYS[1], 'value')
  redis.call('hset', KEYS[1], 'expires_at', 0)
end
return 1
"""

# KEYS[1] the force hash; ARGV: now, now - spacing, daily, end of the China day.
_CLAIM_FORCE = """
local last = tonumber(redis.call('hget', KEYS[1], 'expires_at') or '0')
local count = tonumber(redis.call('hget', KEYS[1], 'error_code') or '0') or 0
local day_end = tonumber(redis.call('hget', KEYS[1], 'error_until') or '0')
local now = tonumber(ARGV[1])
if last > tonumber(ARGV[2]) then return 0 end
if day_end <= now then count = 0 end
if count >= tonumber(ARGV[3]) then return 0 end
redis.call('hset', KEYS[1], 'expires_at', ARGV[1], 'error_code', count + 1,
  'error_until', ARGV[4])
return 1
"""


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
        self._acquire = self.redis.register_script(_ACQUIRE)
        self._renew = self.redis.register_script(_RENEW)
        self._save = self.redis.register_script(_SAVE)
        self._release = self.redis.register_script(_RELEASE)
        self._fail = self.redis.register_script(_FAIL)
        self._invalidate = self.redis.register_script(_INVALIDATE)
        self._recheck = self.redis.register_script(_RECHECK)
        self._claim_force = self.redis.register_script(_CLAIM_FORCE)

    def _key(self, appid, kind):
        return f"{self.prefix}:{appid}:{kind}"

    def _keys(self, appid, kind):
        key = self._key(appid, kind)
        return [key, key + ":lease"]

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
        keys = self._keys(appid, kind)
        return bool(self._call(self._acquire, keys=keys, args=[owner, _ttl_ms(now, until)]))

    def renew(self, appid, kind, owner, now, until):
        """Extend ``owner``'s lease to ``until``; return False if another holder took it."""
        keys = self._keys(appid, kind)
        return bool(self._call(self._renew, keys=keys, args=[owner, _ttl_ms(now, until)]))

    def save(self, appid, kind, owner, value, expires_at):
        """Store a fresh value and release the lease, only if ``owner`` still holds it."""
        keys = self._keys(appid, kind)
        return bool(self._call(self._save, keys=keys, args=[owner, value, repr(expires_at)]))

    def release(self, appid, kind, owner):
        """Give the lease back if we still hold it."""
        self._call(self._release, keys=self._keys(appid, kind), args=[owner])

    def fail(self, appid, kind, owner, error_code, error_until):
        """Remember a failure other workers should not repeat, and release the lease."""
        args = [owner, "" if error_code is None else error_code, repr(error_until)]
        self._call(self._fail, keys=self._keys(appid, kind), args=args)

    def note_failure(self, appid, kind, error_code, error_until):
        """Remember a failure of a call made without a lease (the code exchange)."""
        mapping = {
            "error_code": "" if error_code is None else error_code,
            "error_until": error_until,
        }
        self._call(self.redis.hset, self._key(appid, kind), mapping=mapping)

    def invalidate(self, appid, kind, value):
        """Drop ``value`` if it is still the stored one."""
        self._call(self._invalidate, keys=[self._key(appid, kind)], args=[value])

    def recheck(self, appid, kind, value, now, until):
        """Open a re-check window until ``until`` and drop ``value``; False while one is open."""
        key = self._key(appid, kind)
        args = [value, _ttl_ms(now, until)]
        return bool(self._call(self._recheck, keys=[key, key + ":recheck"], args=args))

    def claim_force(self, appid, kind, now, spacing, daily, day_end):
        """Count one forced refresh if ``spacing`` s passed and fewer than ``daily`` today."""
        # Same fields as the database's ``<kind>:force`` row, so ``read`` works on it too.
        args = [repr(now), repr(now - spacing), daily, repr(day_end)]
        keys = [self._key(appid, kind + ":force")]
        return bool(self._call(self._claim_force, keys=keys, args=args))

    def forget(self, appid, kind):
        """Delete everything stored for ``kind``: value, lease, failure, re-check window."""
        key = self._key(appid, kind)
        self._call(self.redis.delete, key, key + ":lease", key + ":recheck")


def _ttl_ms(now, until):
    return max(1, int((until - now) * 1000))
