"""The WeChat client: HTTP to WeChat, no Flask (tests/test_architecture.py enforces it)."""

from .client import WeChatClient
from .errors import WeChatError
from .media import Download, MediaTooLarge
from .oauth import WebToken

__all__ = ["WeChatClient", "WeChatError", "Download", "MediaTooLarge", "WebToken"]
