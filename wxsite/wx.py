"""Flask glue for the WeChat client: one client per app, built from its settings."""

import time

from flask import current_app

from .store import CredentialStore
from .wechat import WeChatClient

EXTENSION = "wxsite.wechat"


def init_app(app):
    """Build the app's ``WeChatClient`` (credentials shared through the database)."""
    cfg = app.config
    if cfg["WXSITE_REDIS_URL"]:
        from .redis_store import RedisCredentialStore

        credential_store = RedisCredentialStore(cfg["WXSITE_REDIS_URL"])
    else:
        credential_store = CredentialStore(cfg["WXSITE_DATABASE"])
    app.extensions[EXTENSION] = WeChatClient(
        cfg["WX_APPID"],
        cfg["WX_SECRET"],
        credential_store,
        api_base=cfg["WX_API_BASE"],
        open_base=cfg["WX_OPEN_BASE"],
        token_api=cfg["WX_TOKEN_API"],
        clock=cfg.get("WXSITE_CLOCK", time.time),
        read_timeout=cfg["WXSITE_HTTP_TIMEOUT"],
        deadline=cfg["WXSITE_DEADLINE"],
    )


def client():
    """Return the current app's ``WeChatClient``."""
    return current_app.extensions[EXTENSION]
