"""The yardsticks for ``make bench``: a minimal Flask app, served like the site.

``/bare`` renders a Jinja page shaped like ``/share`` (same markup, no login, no database,
no signing). ``/recipe`` is wechatpy's documented JS-SDK recipe on an anonymous page: the
ticket from ``client.jsapi.get_jsapi_ticket()`` (cached in wechatpy's memory storage) and
``client.jsapi.get_jsapi_signature(noncestr, ticket, timestamp, url)``, rendered into the
same page. Both run under the same gunicorn settings as the site.
"""

import os
import time

from flask import Flask, render_template, request
from wechatpy import WeChatClient
from wechatpy.utils import random_string

from wxsite.jssdk.views import SHARE_APIS, SHARE_DESC, SHARE_TITLE
from wxsite.wechat import protocol

app = Flask(__name__, template_folder=os.path.join(os.path.dirname(__file__), "templates"))
JSSDK_URL = "https://res.wx.qq.com/open/js/jweixin-1.6.0.js"
# The site's own share data (the same page, bare): only the link is this app's.
SHARE = {
    "title": SHARE_TITLE,
    "desc": SHARE_DESC.format(name="张三"),
    "link": "http://127.0.0.1/?ref=AbCdEfGhIjKl",
    "imgUrl": "http://127.0.0.1/static/img/share.png",
}

API_BASE = os.environ.get("WXSITE_EMULATOR_URL", "") + "/cgi-bin/"


class EmulatedClient(WeChatClient):
    """wechatpy's client with the emulator playing api.weixin.qq.com, as it does for the site."""

    API_BASE_URL = API_BASE

    def fetch_access_token(self):
        # wechatpy spells this one URL out instead of using API_BASE_URL.
        return self._fetch_access_token(
            url=API_BASE + "token",
            params={"grant_type": "client_credential", "appid": self.appid, "secret": self.secret},
        )


_client = EmulatedClient(protocol.EMULATOR_APPID, protocol.EMULATOR_SECRET)


@app.get("/bare")
def bare():
    """Render the share page's markup with no config."""
    return render_template("share.html", wx_config=None, share=SHARE, visits=3)


@app.get("/recipe")
def recipe():
    """Sign ``wx.config`` the way wechatpy's documentation shows."""
    ticket = _client.jsapi.get_jsapi_ticket()
    nonce, timestamp = random_string(16), int(time.time())
    config = {
        "appId": _client.appid,
        "timestamp": timestamp,
        "nonceStr": nonce,
        "signature": _client.jsapi.get_jsapi_signature(nonce, ticket, timestamp, request.url),
        "jsApiList": SHARE_APIS,
    }
    return render_template("share.html", wx_config=config, share=SHARE, visits=3)


@app.context_processor
def page_globals():
    return {"jssdk_url": JSSDK_URL, "site_name": "微站"}
