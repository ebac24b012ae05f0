"""``/account``: the site account, the WeChat identities bound to it, and its orders."""

from flask import Blueprint, render_template
from flask_login import current_user

from .. import store
from ..menu import home_entry
from ..auth.decorators import account_required
from ..pay.words import order_words

bp = Blueprint("account", __name__)
home_entry(bp, "page", "我的账号", "本站账号、绑定的微信与订单")


@bp.get("/account")
@account_required
def page():
    """Show the bound account (unbound people are sent to bind first, then back here)."""
    db = store.get_db()
    return render_template(
        "account/account.html",
        account=store.get_account(db, current_user.account_id),
        identities=store.account_identities(db, current_user.account_id),
        orders=store.list_orders(db, current_user.person_id),
        order_words=order_words,  # the words of /orders, refunds included
    )
