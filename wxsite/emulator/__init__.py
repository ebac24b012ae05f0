"""The WeChat emulator: a stand-in for WeChat's authorization, API and JS-SDK hosts.

It is its own WSGI app and imports nothing from the site, not even its protocol
constants: WeChat's paths and errcodes are written down in :mod:`.wechat_facts`.
See docs/emulator.md.
"""

from flask import Flask, redirect

from . import wechat_facts as facts
from . import api, control, hooks, jssdk, oauth, pay, persist, push, pushes, qrcodes, server
from .state import EmulatorState
from .users import DEFAULT_USERS

#: Every setting the emulator reads, with its default.
DEFAULTS = {
    #: appid -> secret of the Official Accounts it emulates (one Open Platform account).
    "EMU_ACCOUNTS": facts.EMULATOR_ACCOUNTS,
    #: appid -> display name on the authorization page.
    "EMU_ACCOUNT_NAMES": {
        facts.EMULATOR_APPID: "模拟公众号",
        facts.EMULATOR_APPID_2: "模拟公众号二",
    },
    #: Hosts (host or host:port) redirect_uri may point at; None allows any.
    "EMU_AUTH_DOMAINS": None,
    #: Hosts (host or host:port) wx.config may be called from; None allows any.
    "EMU_JS_DOMAINS": None,
    #: Seconds a superseded classic token / force-refreshed stable token / ticket still works.
    "EMU_CLASSIC_GRACE": facts.CLASSIC_TOKEN_GRACE,
    #: Issue this jsapi_ticket instead of random ones (for signature tests).
    "EMU_FIXED_TICKET": None,
    #: Base of absolute URLs it hands out (headimgurl); None uses the request's host.
    "EMU_PUBLIC_URL": None,
    #: The fake merchant's APIv3 key (notifications are encrypted with it).
    "EMU_PAY_APIV3_KEY": facts.EMULATOR_APIV3_KEY,
    #: Who signs Pay answers/notifications: public_key, certificate, or both (at random).
    "EMU_PAY_SIGNER": "public_key",
    #: What a new refund answers: SUCCESS at once, or PROCESSING until moved.
    "EMU_PAY_REFUND_STATUS": "SUCCESS",
    #: media/get/jssdk makes up real WeChat-framed wideband speex (silence) instead of the
    #: marked stand-in bytes (which the site's tests rely on being refused as not speex).
    "EMU_REAL_SPEEX": False,
    #: The fake users (FakeUser instances).
    "EMU_USERS": DEFAULT_USERS,
    #: appid -> 服务器配置 {"url", "token", "aes_key", "mode"} the emulator pushes with.
    "EMU_PUSH": {},
    #: appid -> original id (gh_…), the ToUserName of pushes; unset ones are derived.
    "EMU_ORIGINAL_IDS": {},
    #: Seconds WeChat waits for a push's answer before it tries again.
    "EMU_PUSH_TIMEOUT": push.TIMEOUT,
    #: Retries after the first attempt (timeout, non-2xx, or an answer not success/""/XML).
    "EMU_PUSH_RETRIES": push.RETRIES,
    #: Wall-clock seconds between attempts (WeChat's pace is the timeout; tests want less).
    "EMU_PUSH_RETRY_DELAY": push.RETRY_DELAY,
    #: A file (SQLite) that keeps the state across restarts (see persist.py); None (the
    #: tests) keeps it in memory only. The CLI uses instance/emulator.sqlite3.
    "EMU_STATE_FILE": None,
}


def create_emulator(config=None):
    """Create the emulator app; *config* overrides :data:`DEFAULTS`."""
    app = Flask(__name__, static_url_path="/_emu/static")
    app.config.from_mapping(DEFAULTS)
    if config:
        app.config.from_mapping(config)
    # WeChat sends real UTF-8 and keeps its own key order.
    app.json.ensure_ascii = False
    app.json.sort_keys = False
    app.extensions["wxemu"] = EmulatorState(
        accounts=app.config["EMU_ACCOUNTS"],
        users=app.config["EMU_USERS"],
        grace=app.config["EMU_CLASSIC_GRACE"],
        fixed_ticket=app.config["EMU_FIXED_TICKET"],
        real_speex=app.config["EMU_REAL_SPEEX"],
    )
    app.extensions["wxemu.pay"] = pay.PayState(
        app.config["EMU_PAY_APIV3_KEY"],
        app.config["EMU_PAY_SIGNER"],
        app.config["EMU_PAY_REFUND_STATUS"],
    )
    app.extensions["wxemu.push"] = push.PushState(pushes.configs_from_settings(app))
    if app.config["EMU_STATE_FILE"]:
        persist.init_app(app, app.config["EMU_STATE_FILE"])
    hooks.init_app(app)
    for blueprint in (oauth.bp, api.bp, jssdk.bp, control.bp, pay.bp, pushes.bp, qrcodes.bp):
        app.register_blueprint(blueprint)
    app.add_url_rule("/", "home", lambda: redirect("/_emu/"))
    # Run alone (`flask --app wsgi wx emulator`) its access lines would show the fake
    # secrets, codes and tokens the callers send in query strings.
    server.hide_query_strings()
    return app
