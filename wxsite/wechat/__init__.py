"""The WeChat client: HTTP to WeChat, no Flask (a test enforces it).

Names are imported lazily so that ``wxsite.wechat.protocol`` (shared with the emulator)
loads without requests or the client.
"""

import importlib

_EXPORTS = {
    "WeChatClient": ".client",
    "WeChatError": ".errors",
    "Download": ".media",
    "MediaTooLarge": ".media",
    "WebToken": ".oauth",
}

__all__ = list(_EXPORTS)


def __getattr__(name):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name], __name__), name)
