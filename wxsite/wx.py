"""Flask glue for the WeChat client: one client per app, built from its settings."""

import time

from flask import current_app

from . import store
from .wechat import WeChatClient

EXTENSION = "wxsite.wechat"
PAY_EXTENSION = "wxsite.pay"
PUSH_EXTENSION = "wxsite.push"


def init_app(app):
    """Build the app's ``WeChatClient`` (credentials shared through the database)."""
    cfg = app.config
    if cfg["WXSITE_REDIS_URL"]:
        from .redis_store import RedisCredentialStore

        credential_store = RedisCredentialStore(cfg["WXSITE_REDIS_URL"])
    else:
        credential_store = store.CredentialStore(store.engine(app))
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


def init_push(app):
    """Build the app's push receiver when WX_PUSH_TOKEN is set (push off otherwise)."""
    from .wechat.push import PushReceiver

    cfg = app.config
    app.extensions[PUSH_EXTENSION] = None
    if cfg["WX_PUSH_TOKEN"]:
        app.extensions[PUSH_EXTENSION] = PushReceiver(
            cfg["WX_PUSH_TOKEN"],
            cfg["WX_APPID"],
            cfg["WX_PUSH_AES_KEY"],
            clock=cfg.get("WXSITE_CLOCK", time.time),
        )


def push_receiver():
    """Return the app's ``PushReceiver``, or None when push is off."""
    return current_app.extensions.get(PUSH_EXTENSION)


def client():
    """Return the current app's ``WeChatClient``."""
    return current_app.extensions[EXTENSION]


def init_pay(app):
    """Build the app's WeChat Pay client when a merchant is configured (keys read once)."""
    from .config import ConfigError
    from .wechat import pay

    cfg = app.config
    app.extensions[PAY_EXTENSION] = None
    if not cfg["WXPAY_MCHID"]:
        return
    keys = {}
    for name, load in (
        ("WXPAY_PRIVATE_KEY_FILE", pay.load_private_key),
        ("WXPAY_PUBLIC_KEY_FILE", pay.load_public_key),
    ):
        try:
            with open(cfg[name], "rb") as f:
                keys[name] = load(f.read())
        except (OSError, ValueError, TypeError) as exc:
            raise ConfigError(f"{name} is not a usable PEM key ({type(exc).__name__})") from None
    app.extensions[PAY_EXTENSION] = pay.PayClient(
        cfg["WXPAY_MCHID"],
        cfg["WX_APPID"],
        keys["WXPAY_PRIVATE_KEY_FILE"],
        cfg["WXPAY_CERT_SERIAL"],
        cfg["WXPAY_APIV3_KEY"],
        keys["WXPAY_PUBLIC_KEY_FILE"],
        cfg["WXPAY_PUBLIC_KEY_ID"],
        api_base=cfg["WXPAY_API_BASE"],
        ca_bundle=cfg["WXPAY_CA_BUNDLE"],
    )


def pay_client():
    """Return the app's ``PayClient``, or None when WeChat Pay is not configured."""
    return current_app.extensions.get(PAY_EXTENSION)
