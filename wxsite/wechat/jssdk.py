"""JS-SDK config signing (SPEC §4): pure functions, no I/O."""

import hashlib
import os
import time


def signature(ticket, noncestr, timestamp, url):
    """Return the sha1 signature WeChat expects for ``url`` (fragment already removed)."""
    raw = f"jsapi_ticket={ticket}&noncestr={noncestr}&timestamp={timestamp}&url={url}"
    return hashlib.sha1(raw.encode("utf-8")).hexdigest()


def nonce():
    """Return a fresh random nonceStr (16 hex characters) from a CSPRNG."""
    # secrets.token_hex(8) without its two wrappers: it sits on every signed page's path.
    return os.urandom(8).hex()


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
