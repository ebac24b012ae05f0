"""Flask glue for the WeChat client: one client per app, built from its settings."""

from flask import current_app

from . import clock, store
from .wechat import WeChatClient

EXTENSION = "wxsite.wechat"
PAY_EXTENSION = "wxsite.pay"
PUSH_EXTENSION = "wxsite.push"


def init_app(app):
    """Build the app's ``WeChatClient`` (credentials shared through the database)."""
    cfg = app.config
    if cfg["WXSITE_REDIS_URL"]:
        from .store.redis_credentials import RedisCredentialStore

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
        clock=clock.source(app),
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
            clock=clock.source(app),
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
    private_key = _read_pem(
        "WXPAY_PRIVATE_KEY_FILE", cfg["WXPAY_PRIVATE_KEY_FILE"], pay.load_private_key
    )
    keys, request_serial = {}, None
    if cfg["WXPAY_PUBLIC_KEY_FILE"]:
        request_serial = cfg["WXPAY_PUBLIC_KEY_ID"]
        keys[request_serial] = _read_pem(
            "WXPAY_PUBLIC_KEY_FILE", cfg["WXPAY_PUBLIC_KEY_FILE"], pay.load_public_key
        )
    newest = None
    for path in (cfg["WXPAY_PLATFORM_CERT_FILES"] or "").split(","):
        if not path:
            continue
        serial, key, since = _read_pem("WXPAY_PLATFORM_CERT_FILES", path, pay.load_certificate)
        if serial in keys:
            raise ConfigError(f"WXPAY_PLATFORM_CERT_FILES names serial {serial} twice")
        keys[serial] = key
        if newest is None or since > newest[1]:
            newest = (serial, since)
    # The serial the site names in its own requests: the public key when there is one
    # (WeChat's direction since 2024), else the newest certificate.
    request_serial = request_serial or newest[0]
    app.extensions[PAY_EXTENSION] = pay.PayClient(
        cfg["WXPAY_MCHID"],
        cfg["WX_APPID"],
        private_key,
        cfg["WXPAY_CERT_SERIAL"],
        cfg["WXPAY_APIV3_KEY"],
        keys,
        request_serial,
        api_base=cfg["WXPAY_API_BASE"],
        ca_bundle=cfg["WXPAY_CA_BUNDLE"],
        deadline=cfg["WXSITE_DEADLINE"],
        clock=clock.source(app),
    )


def _read_pem(name, path, load):
    from .config import ConfigError

    try:
        with open(path, "rb") as f:
            return load(f.read())
    except (OSError, ValueError, TypeError) as exc:
        where = f": {path}" if name == "WXPAY_PLATFORM_CERT_FILES" else ""
        raise ConfigError(f"{name} is not a usable PEM key{where} ({type(exc).__name__})") from None


def pay_client():
    """Return the app's ``PayClient``, or None when WeChat Pay is not configured."""
    return current_app.extensions.get(PAY_EXTENSION)
