"""Home, ``/healthz`` and ``/MP_verify_<code>.txt``."""

from flask import Blueprint, abort, current_app, jsonify, render_template

from .. import clock, store, wx
from ..menu import home_entries
from ..wechat import WeChatError
from ..wechat.client import ACCESS_TOKEN, JSAPI_TICKET

bp = Blueprint("pages", __name__)


@bp.record_once
def site_context(state):
    """Give every template the site's name (a global: no context processor per render)."""
    state.app.jinja_env.globals["site_name"] = state.app.config["WXSITE_NAME"]


@bp.app_template_filter("datetime")
def format_datetime(timestamp):
    """Show a stored timestamp as date and minute in China time (not the server's zone)."""
    return clock.china_time(timestamp)


@bp.get("/")
def home():
    """Show the home page; works logged out."""
    return render_template("pages/home.html", features=home_entries(current_app))


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
    # Credentials kept in the database that just failed would each wait out the pool again
    # (a balancer's check would time out before reading "database: error"): not asked.
    in_database = isinstance(client.credentials.store, store.CredentialStore)
    for kind in (ACCESS_TOKEN, JSAPI_TICKET):
        try:
            if database != "ok" and in_database:
                raise store.Unavailable("the database is down")
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
