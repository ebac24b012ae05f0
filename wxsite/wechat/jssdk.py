"""JS-SDK config signing (SPEC §4): pure functions, no I/O."""

import hashlib
import secrets
import string
import time

_ALPHABET = string.ascii_letters + string.digits


def signature(ticket, noncestr, timestamp, url):
    """Return the sha1 signature WeChat expects for ``url`` (fragment already removed)."""
    raw = f"jsapi_ticket={ticket}&noncestr={noncestr}&timestamp={timestamp}&url={url}"
    return hashlib.sha1(raw.encode("utf-8")).hexdigest()


def nonce(length=16):
    """Return a fresh random nonceStr from a CSPRNG."""
    return "".join(secrets.choice(_ALPHABET) for _ in range(length))


def config(appid, ticket, url, js_api_list, now=None):
    """Return the ``wx.config`` dict for ``url``, signed with a fresh nonce and timestamp."""
    url = url.split("#", 1)[0]
    timestamp = int(now if now is not None else time.time())
    noncestr = nonce()
    return {
        "appId": appid,
        "timestamp": timestamp,
        "nonceStr": noncestr,
        "signature": signature(ticket, noncestr, timestamp, url),
        "jsApiList": list(js_api_list),
    }
