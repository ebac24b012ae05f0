"""``/jssdk/config``, ``/jssdk/report`` and ``/share``; referral visits counted on any page."""

import logging
import re
from urllib.parse import quote, urlsplit

from authlib.common.security import generate_token
from flask import Blueprint, current_app, jsonify, request, session
from flask_login import current_user

from .. import store, wx
from ..menu import home_entry
from ..assets import asset_url
from ..auth.decorators import in_wechat, login_redirect, wechat_required
from ..errors import error_response, wants_json
from ..extensions import path_for
from .signing import (
    KNOWN_TAGS,
    PAGE_APIS,
    SIGNABLE_APIS,
    page_apis,
    public_base,
    render_jssdk,
    same_site,
    signed_config,
)

log = logging.getLogger("wxsite.jssdk")
bp = Blueprint("jssdk", __name__)
home_entry(bp, "share", "分享", "分享给朋友或朋友圈")

REF_RE = re.compile(r"[A-Za-z0-9]{8,32}")
SHARE_APIS = page_apis("updateAppMessageShareData", "updateTimelineShareData")
#: What a shared /share link says in the chat or Moments.
SHARE_TITLE = "来看看这个微站"
SHARE_DESC = "{name}邀请你来看看"
#: For pages that sign on demand (/jssdk/config) and hide or show the menu.
page_apis("closeWindow", "hideMenuItems", "showMenuItems")
SIGNATURE_RE = re.compile(r"[0-9a-f]{40}")
NONCE_RE = re.compile(r"[A-Za-z0-9]{1,32}")
TIMESTAMP_RE = re.compile(r"[0-9]{1,12}")
#: The open tag /share shows, and the shape of a mini program's original id.
WEAPP_TAG = "wx-open-launch-weapp"
WEAPP_RE = re.compile(r"gh_[0-9A-Za-z]{6,32}")


@bp.get("/jssdk/config")
def config():
    """Sign ``wx.config`` for ``?url=`` — only URLs of this site."""
    url = request.args.get("url", "")
    if len(url) > 4096 or not same_site(url):
        return error_response(
            400, "只能为本站页面签名", "url 必须是本站的完整地址。", code="foreign_url"
        )
    apis = [a for a in request.args.get("apis", ",".join(SHARE_APIS)).split(",") if a]
    if not apis or any(a not in SIGNABLE_APIS for a in apis):
        return error_response(400, "未知的接口", "apis 含有不支持的接口。", code="unknown_api")
    tags = [t for t in request.args.get("tags", "").split(",") if t]
    if len(tags) > len(KNOWN_TAGS) or any(t not in KNOWN_TAGS for t in tags):
        return error_response(
            400, "未知的开放标签", "tags 含有不支持的开放标签。", code="unknown_tag"
        )
    return jsonify(signed_config(apis, url=url.split("#", 1)[0], open_tag_list=tags))


@bp.post("/jssdk/report")
def report():
    """Answer a page whose ``wx.config`` got "invalid signature" with a config to retry once."""
    # Same origin with the CSRF token (Flask-WTF). Anyone may still post one, so it can at
    # most trigger the shared, rate-limited re-fetch of the ticket (see jssdk_retry_config).
    data = request.get_json(silent=True)
    failed = data.get("config") if isinstance(data, dict) else None
    url = data.get("url") if isinstance(data, dict) else None
    if not isinstance(url, str) or len(url) > 4096 or not isinstance(failed, dict):
        return _bad_report()
    url = url.split("#", 1)[0]
    apis = failed.get("jsApiList")
    tags = failed.get("openTagList", [])
    fields = [str(failed.get(k, "")) for k in ("timestamp", "nonceStr", "signature")]
    if (
        not same_site(url)
        or not isinstance(apis, list)
        or not 0 < len(apis) <= len(PAGE_APIS)
        or not all(isinstance(a, str) and a in PAGE_APIS for a in apis)
        or not isinstance(tags, list)
        or not all(isinstance(t, str) and t in KNOWN_TAGS for t in tags)
        or not all(rx.fullmatch(v) for rx, v in zip((TIMESTAMP_RE, NONCE_RE, SIGNATURE_RE), fields))
    ):
        return _bad_report()
    # The path only: a query string may carry anything the page had in its address.
    log.info("wx.config failed on %s: invalid signature", urlsplit(url).path)
    config = wx.client().jssdk_retry_config(
        url, apis, *fields, open_tag_list=list(dict.fromkeys(tags))
    )
    if config is None:
        return jsonify({"retry": False})
    return jsonify({"retry": True, "config": config})


def _bad_report():
    return error_response(400, "报告无效", "需要本站页面的地址与失败的签名。", code="bad_report")


@bp.get("/share")
@wechat_required
def share():
    """Set share data for chats and Moments; show how many people came through it."""
    db = store.get_db()
    user = current_user._get_current_object()  # one look-up instead of one per attribute
    code = user.row["referral_code"] or store.referral_code(db, user.person_id, generate_token(12))
    base = public_base()
    data = {
        "title": SHARE_TITLE,
        "desc": SHARE_DESC.format(name=user.nickname or "你的朋友"),
        "link": f"{base}{path_for('pages.home')}?ref={quote(code, safe='')}",
        "imgUrl": base + asset_url("img/share.png"),
    }
    weapp = _weapp() if in_wechat() else None
    return render_jssdk(
        "jssdk/share.html",
        SHARE_APIS,
        open_tags=[WEAPP_TAG] if weapp else (),
        share=data,
        visits=store.share_visits(db, user.person_id),
        weapp=weapp,
    )


def _weapp():
    """Return ``{"username", "path"}`` of the configured mini program, or None."""
    setting = (current_app.config.get("WXSITE_WEAPP_USERNAME") or "").strip()
    username, _, path = setting.partition(":")
    if not WEAPP_RE.fullmatch(username):
        return None
    return {"username": username, "path": path.strip()}


@bp.before_app_request
def count_referral():
    """Count a visit that arrived through someone's shared link (once per visiting person).

    Only a WeChat identity counts, so anonymous requests write nothing and nobody can
    inflate a count with cookieless requests. In WeChat an anonymous visitor is first sent
    through silent snsapi_base authorization (no prompt), which brings them back here.
    """
    req = request._get_current_object()
    if req.method != "GET" or not req.environ.get("QUERY_STRING"):
        return None  # no query string to parse
    code = req.args.get("ref")
    if not code or not REF_RE.fullmatch(code):
        return None
    if not current_user.is_authenticated:
        return login_redirect() if in_wechat() and not wants_json() else None
    seen = session.get("ref_seen", [])
    if code in seen:
        return None
    db = store.get_db()
    sharer = store.person_by_referral(db, code)
    if sharer is not None:
        store.record_share_visit(db, sharer, current_user.person_id)  # never the sharer's own
    session["ref_seen"] = (seen + [code])[-20:]
    return None
