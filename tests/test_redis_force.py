"""Forced refreshes counted in Redis: two hosts are limited together, as over one database."""

from test_redis_store import redis_store, redis_url  # noqa: F401 - pytest fixtures
from wxsite.store.redis_credentials import RedisCredentialStore
from wxsite.wechat import credentials

KIND = "access_token"


def test_redis_counts_forced_refreshes_for_every_host(redis_store, redis_url):  # noqa: F811
    other = RedisCredentialStore(redis_url)
    day_end = credentials.china_day_end(1000.0)
    assert redis_store.claim_force("wxa", KIND, 1000.0, 30, 2, day_end)
    assert not other.claim_force("wxa", KIND, 1029.0, 30, 2, day_end)  # inside 30 s
    assert other.claim_force("wxa", KIND, 1030.0, 30, 2, day_end)
    assert not redis_store.claim_force("wxa", KIND, 1100.0, 30, 2, day_end)  # the day's 2 spent
    row = redis_store.read("wxa", KIND + ":force")
    assert (row.value, row.expires_at, row.error_code) == (None, 1030.0, 2)
    assert redis_store.claim_force("wxa", KIND, day_end, 30, 2, day_end + 86400)  # a new day
    assert redis_store.read("wxa", KIND + ":force").error_code == 1
    assert redis_store.read("wxa", KIND) is None  # the count is not a stored value
