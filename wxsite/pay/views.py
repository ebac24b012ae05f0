"""/pay/ (shop), /pay/orders/<no> (pay), /orders (mine), /pay/admin (refunds)."""

import logging
import re
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
from ..menu import home_entry
from ..auth.decorators import account_required, wechat_required
from ..errors import error_response, wechat_failure
from ..jssdk.signing import page_apis, render_jssdk
from ..wechat.pay import PayError
from ..store import pay as pay_store
from .apply import apply_transaction
from .products import PRODUCTS, yuan
from .refunds import RefundError, notify_url, refund
from .words import order_words, reason, refund_words

log = logging.getLogger("wxsite.pay")
bp = Blueprint("pay", __name__)
home_entry(bp, "shop", "小店", "微信支付购买")
home_entry(bp, "orders", "我的订单", "订单与退款")
PAY_APIS = page_apis("chooseWXPay", on_demand=False)
#: Seconds between two WeChat Pay queries of one unpaid order.
QUERY_INTERVAL = 5


@bp.app_template_filter("yuan")
def yuan_filter(fen):
    """Show an amount in fen as yuan."""
    return yuan(fen or 0)


#: An amount typed in yuan: whole yuan, or with one or two decimals (fen).
_YUAN = re.compile(r"(\d{1,7})(?:\.(\d{1,2}))?")


def parse_yuan(text):
    """Return fen for an amount typed in yuan ("5", "5.5", "5.05"), or None."""
    match = _YUAN.fullmatch((text or "").strip().replace("¥", "").replace("元", ""))
    if match is None:
        return None
    return int(match[1]) * 100 + int((match[2] or "").ljust(2, "0"))


@bp.app_context_processor
def pay_words():
    """Give templates the words for orders and refunds."""
    return {"order_words": order_words, "refund_words": refund_words, "refund_reason": reason}


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
        return error_response(
            400,
            "商品不存在",
            "这件商品已下架或链接有误，请回到小店重新选择。",
            code="unknown_product",
        )
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
    refunds = pay_store.refunds_of(store.get_db(), out_trade_no)
    params = None
    if row["state"] == "NOTPAY" and row["prepay_id"]:
        params = _client().page_params(row["prepay_id"])
    return render_jssdk(
        "pay/order.html", PAY_APIS if params else (), order=row, refunds=refunds, params=params
    )


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
    if request.method == "GET":
        short = pay_store.short_refunds(db)
        return render_template("pay/admin.html", orders=store.list_paid_orders(db), short=short)
    out_trade_no = request.form.get("out_trade_no", "")
    amount = parse_yuan(request.form.get("amount"))
    order = store.get_order(db, out_trade_no)
    if order is None or not amount:
        flash("请输入退款金额（元），如 5 或 5.50", "error")
        return redirect(url_for("pay.admin"))
    request_id = request.form.get("request_id") or None
    if request.form.get("confirm") != "yes":
        # A refund cannot be taken back: the operator sees what will happen first.
        return render_template(
            "pay/admin_confirm.html", order=order, amount=amount, request_id=request_id
        )
    try:
        row = refund(db, client, out_trade_no, amount, request_id, notify_url())
    except RefundError as exc:
        flash(str(exc), "error")
        return redirect(url_for("pay.admin"))
    label = "可用余额" if row["funds_account"] == "AVAILABLE" else "未结算资金"
    if row["status"] == "SUCCESS":
        flash(f"已退款 ¥{yuan(row['amount'])}（{label}）", "success")
    elif row["status"] == "PENDING":
        flash(
            f"商户余额不足：退款 ¥{yuan(row['amount'])} 已暂存，充值后将自动重试"
            f"（退款单号 {row['out_refund_no']} 不变）",
            "error",
        )
    else:
        flash(f"退款 ¥{yuan(row['amount'])} 已受理，微信支付处理中（{label}）", "success")
    return redirect(url_for("pay.admin"))


def _own_order(out_trade_no):
    row = store.get_order(store.get_db(), out_trade_no, current_user.person_id)
    if row is None:
        abort(404)
    return row
