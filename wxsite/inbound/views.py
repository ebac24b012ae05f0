"""``/wechat/push`` (消息推送) and ``/pay/notify``, ``/pay/refund-notify``."""

import hashlib
import json
import logging

from flask import Blueprint, Response, current_app, jsonify, request
from werkzeug.exceptions import HTTPException

from .. import store, wx
from ..extensions import csrf
from ..pay.apply import apply_refund, apply_transaction
from ..wechat.pay import BadNotification
from ..wechat.push import SUCCESS, BadPush, read_body
from . import events

log = logging.getLogger("wxsite.inbound")
bp = Blueprint("inbound", __name__)
#: What a push answered when the site has nothing to add (WeChat accepts "" or "success").
PUSH_OK = SUCCESS


def _text(body, status=200):
    return Response(body, status, content_type="text/plain; charset=utf-8")


@bp.errorhandler(BadPush)
def bad_push(exc):
    """Refuse a push in one short log line; the reason never goes back (nor the payload)."""
    log.warning("push refused: %s", exc.reason)
    return _text("", exc.status)


@bp.errorhandler(HTTPException)
def http_error(exc):
    """Answer WeChat's callers in plain words, not with the site's HTML error page."""
    return refusal(exc.code, exc.name)


@bp.errorhandler(Exception)
def not_applied(exc):
    """A database busy or down, or a bug: a 5xx WeChat retries, in the shape it reads."""
    if isinstance(exc, (store.Busy, store.Unavailable)):
        log.error("%s not applied, WeChat will retry: %s", request.path, exc)
        return refusal(503, "busy, retry later")
    log.exception("%s not applied, WeChat will retry", request.path)
    return refusal(500, "not applied, retry later")


def refusal(status, message):
    """Pay's callers read JSON ``{"code": "FAIL"}``; a push reads an empty body."""
    if request.path.startswith("/pay/"):
        return jsonify({"code": "FAIL", "message": message}), status
    return _text("", status)


@bp.route("/wechat/push", methods=["GET", "POST"])
@csrf.exempt
def push():
    """WeChat's server push: GET verifies the URL, POST delivers a message or an event."""
    receiver = wx.push_receiver()
    if receiver is None:
        return _text("", 404)  # push is off: WX_PUSH_TOKEN is not set
    if request.method == "GET":
        return _text(receiver.verify_url(request.args))
    event = receiver.receive(request.args, read_body(request.stream, receiver.max_bytes))
    db = store.get_db()
    appid = current_app.config["WX_APPID"]
    with store.transaction(db):
        kind = event.event or event.msg_type
        if not store.record_delivery(db, f"push:{appid}:{event.dedupe_key}", kind):
            return _text(PUSH_OK)  # WeChat's retry of one already applied
        reply = events.apply(db, appid, event)
    if reply:
        return Response(receiver.reply_text(event, reply), content_type="application/xml")
    return _text(PUSH_OK)


@bp.post("/pay/notify")
@csrf.exempt
def pay_notify():
    """Payment notifications: verified, decrypted, applied once."""
    return _notification(("TRANSACTION.SUCCESS",), apply_transaction)


@bp.post("/pay/refund-notify")
@csrf.exempt
def refund_notify():
    """Refund notifications: verified, decrypted, applied once."""
    return _notification(("REFUND.SUCCESS", "REFUND.ABNORMAL", "REFUND.CLOSED"), apply_refund)


def _notification(kinds, apply):
    client = wx.pay_client()
    if client is None:
        return jsonify({"code": "FAIL", "message": "pay disabled"}), 404
    try:
        data = client.parse_notification(request.headers, request.get_data())
    except BadNotification as exc:
        log.warning("refused a pay notification: %s", exc)
        return jsonify({"code": "FAIL", "message": "签名验证失败"}), 401
    if data.get("event_type") not in kinds:
        return jsonify({"code": "FAIL", "message": "unexpected event"}), 400
    db = store.get_db()
    # The record that it was applied commits with the change itself: a failure in between
    # leaves neither, so WeChat's retry applies it.
    with store.transaction(db):
        if store.record_delivery(db, notification_key(data), data["event_type"]):
            apply(data["resource"])
    return "", 204


#: The paths WeChat calls: a request to one that matches no route (a wrong method) is
#: answered here too, although routing failed before the blueprint was known.
PATHS = ("/wechat/push", "/pay/notify", "/pay/refund-notify")


def notification_key(data):
    """Return the delivery key of a pay notification (its id, else a digest of what it says)."""
    # WeChat gives every notification an id; one without (never seen, but not ours to
    # trust) is keyed by what it says, so two such notifications never share a key.
    if data.get("id"):
        return f"pay:{data['id']}"
    digest = hashlib.sha256(json.dumps(data["resource"], sort_keys=True).encode()).hexdigest()
    return f"pay:{data['event_type']}:{digest}"
