"""Home, ``/healthz`` and ``/MP_verify_<code>.txt``."""

from flask import Blueprint, abort, current_app, jsonify, render_template

from .. import store, wx
from ..wechat import WeChatError
from ..wechat.client import ACCESS_TOKEN, JSAPI_TICKET

bp = Blueprint("pages", __name__)

#: Home page entries: (endpoint, label, hint); shown when that blueprint is installed.
FEATURES = (
    ("auth.me", "我的资料", "微信头像、昵称与绑定账号"),
    ("account.page", "我的账号", "本站账号、绑定的微信与订单"),
    ("jssdk.share", "分享", "分享给朋友或朋友圈"),
    ("media.upload", "上传照片", "拍照或从相册选择"),
    ("media.voice", "语音留言", "录一段语音"),
    ("pay.shop", "小店", "微信支付购买"),
    ("pay.orders", "我的订单", "订单与退款"),
)


@bp.record_once
def site_context(state):
    """Give every template the site's name (a global: no context processor per render)."""
    state.app.jinja_env.globals["site_name"] = state.app.config["WXSITE_NAME"]


@bp.app_template_filter("datetime")
def format_datetime(timestamp):
    """Show a stored timestamp as local date and minute."""
    import time as _time

    return _time.strftime("%Y-%m-%d %H:%M", _time.localtime(timestamp or 0))


@bp.get("/")
def home():
    """Show the home page; works logged out."""
    features = [f for f in FEATURES if f[0] in current_app.view_functions]
    return render_template("pages/home.html", features=features)


@bp.get("/healthz")
def healthz():
    """Report database and credential status; never calls WeChat."""
    client = wx.client()
    try:
        database = "ok" if store.ping(store.get_db()) else "error"
    except Exception:  # noqa: BLE001 - a health check reports, it does not raise
        database = "error"
    body = {
        "status": "ok" if database == "ok" else "degraded",
        "mode": "emulator" if current_app.config["WX_EMULATOR"] else "production",
        "appid": client.appid,
        "database": database,
        "credentials": {},
    }
    for kind in (ACCESS_TOKEN, JSAPI_TICKET):
        try:
            body["credentials"][kind] = client.credentials.status(kind)
        except (WeChatError, store.Error):
            body["credentials"][kind] = {"cached": False, "error": "credential store unavailable"}
    return jsonify(body), 200 if database == "ok" else 503


@bp.get("/MP_verify_<code>.txt")
def mp_verify(code):
    """Serve the file the MP console asks for when registering the site's domains."""
    expected = current_app.config["WX_MP_VERIFY"]
    if not expected or code != expected:
        abort(404)
    return expected, 200, {"Content-Type": "text/plain; charset=utf-8"}
