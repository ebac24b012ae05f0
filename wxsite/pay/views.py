"""/pay/ (shop), /pay/orders/<no> (pay), /orders (mine), /pay/admin (refunds)."""

import logging
import time

from authlib.common.security import generate_token
from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    jsonify,
    make_response,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_login import current_user

from .. import store, wx
from ..auth.decorators import account_required, wechat_required
from ..errors import error_response, wechat_failure
from ..jssdk.signing import PAY_APIS, signed_config
from ..wechat.pay import PayError
from .apply import apply_transaction
from .products import PRODUCTS, yuan
from .refunds import RefundError, refund

log = logging.getLogger("wxsite.pay")
bp = Blueprint("pay", __name__)
#: Seconds between two WeChat Pay queries of one unpaid order.
QUERY_INTERVAL = 5


@bp.app_template_filter("yuan")
def yuan_filter(fen):
    """Show an amount in fen as yuan."""
    return yuan(fen or 0)


def _client():
    client = wx.pay_client()
    if client is None:
        abort(
            make_response(
                *error_response(503, "支付未开通", "本站尚未配置微信支付。", code="pay_disabled")
            )
        )
    return client


@bp.get("/pay/")
@wechat_required
def shop():
    """List what there is to buy."""
    _client()
    return render_template("pay/shop.html", products=PRODUCTS)


@bp.post("/pay/orders")
@wechat_required
def create_order():
    """Create the order here, then at WeChat (payer: this openid); go to its page."""
    client = _client()
    product_id = request.form.get("product", "")
    product = PRODUCTS.get(product_id)
    if product is None:
        return error_response(400, "商品不存在", "", code="unknown_product")
    db = store.get_db()
    out_trade_no = "WX" + time.strftime("%Y%m%d%H%M%S") + generate_token(10)
    store.create_order(
        db,
        out_trade_no,
        current_user.person_id,
        current_user.appid,
        current_user.openid,
        product_id,
        product["name"],
        product["price"],
    )
    try:
        prepay_id = client.jsapi_order(
            product["name"],
            out_trade_no,
            product["price"],
            current_user.openid,
            url_for("inbound.pay_notify", _external=True),
        )
    except PayError as exc:
        store.close_order(db, out_trade_no)
        status, title, detail = wechat_failure(exc)
        return error_response(status, "下单失败", detail or title, code="order_failed")
    store.set_order_prepay(db, out_trade_no, prepay_id)
    return redirect(url_for("pay.order", out_trade_no=out_trade_no))


@bp.get("/pay/orders/<out_trade_no>")
@wechat_required
def order(out_trade_no):
    """Show an order; while unpaid, with the button that opens WeChat's payment sheet."""
    row = _own_order(out_trade_no)
    params = wx_config = None
    if row["state"] == "NOTPAY" and row["prepay_id"]:
        params = _client().page_params(row["prepay_id"])
        wx_config = signed_config(PAY_APIS)
    return render_template("pay/order.html", order=row, params=params, wx_config=wx_config)


@bp.get("/pay/orders/<out_trade_no>/status")
@wechat_required
def status(out_trade_no):
    """Answer the order's state; an unpaid one is asked of WeChat (lost notifications)."""
    row = _own_order(out_trade_no)
    # Pages poll every few seconds; one WeChat Pay query per order per interval, shared by
    # every worker, keeps a poll loop from spending the merchant's quota.
    db = store.get_db()
    if row["state"] == "NOTPAY" and store.claim_order_query(db, out_trade_no, QUERY_INTERVAL):
        try:
            apply_transaction(_client().query(out_trade_no))
        except PayError as exc:
            log.warning("order query failed: %s", exc.code)
        row = _own_order(out_trade_no)
    return jsonify({"out_trade_no": out_trade_no, "state": row["state"]})


@bp.get("/orders")
@wechat_required
def orders():
    """The person's orders and refunds."""
    return render_template(
        "pay/orders.html", orders=store.list_orders(store.get_db(), current_user.person_id)
    )


@bp.route("/pay/admin", methods=["GET", "POST"])
@account_required
def admin():
    """Refund paid orders (site accounts listed in WXPAY_ADMINS only; others see 404)."""
    admins = {a.strip().lower() for a in current_app.config["WXPAY_ADMINS"].split(",") if a.strip()}
    if (current_user.account_username or "").lower() not in admins:
        abort(404)
    client = _client()
    db = store.get_db()
    if request.method == "POST":
        try:
            amount = int(request.form.get("amount", ""))
        except ValueError:
            amount = 0
        try:
            row = refund(
                db,
                client,
                request.form.get("out_trade_no", ""),
                amount,
                request.form.get("request_id") or None,
                url_for("inbound.refund_notify", _external=True),
            )
        except RefundError as exc:
            flash(str(exc), "error")
        else:
            label = "可用余额" if row["funds_account"] == "AVAILABLE" else "未结算资金"
            flash(f"已退款 ¥{yuan(row['amount'])}（{label}）", "success")
        return redirect(url_for("pay.admin"))
    return render_template("pay/admin.html", orders=store.list_paid_orders(db))


def _own_order(out_trade_no):
    row = store.get_order(store.get_db(), out_trade_no, current_user.person_id)
    if row is None:
        abort(404)
    return row
