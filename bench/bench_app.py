"""The site plus one page for the benchmark: /share without signing.

``/_bench/bare`` does everything ``/share`` does — login check, the same template, the
same data and database reads — except signing ``wx.config``: it embeds a fixed config of
the same shape. Comparing the two isolates what signing costs on the hot path.
"""

from flask import render_template, url_for
from flask_login import current_user

from wsgi import app
from wxsite import store
from wxsite.auth.decorators import wechat_required
from wxsite.jssdk.signing import SHARE_APIS, public_base

FIXED_CONFIG = {
    "appId": app.config["WX_APPID"],
    "timestamp": 1414587457,
    "nonceStr": "Wm3WZYTPz0wzccnW",
    "signature": "0f9de62fce790f9a083d5c99e95740ceb90c27ed",
    "jsApiList": SHARE_APIS,
}


@app.get("/_bench/bare")
@wechat_required
def bare():
    """Render the share page with a fixed, unsigned config."""
    code = current_user.row["referral_code"] or "unshared"
    data = {
        "title": "来看看这个微站",
        "desc": f"{current_user.nickname or '你的朋友'}邀请你来看看",
        "link": public_base() + url_for("pages.home", ref=code),
        "imgUrl": public_base() + url_for("static", filename="img/share.png"),
    }
    visits = store.share_visits(store.get_db(), current_user.person_id)
    return render_template("jssdk/share.html", wx_config=FIXED_CONFIG, share=data, visits=visits)
