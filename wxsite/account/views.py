"""``/account``: the site account, the WeChat identities bound to it, and its orders."""

from flask import Blueprint, render_template
from flask_login import current_user

from .. import store
from ..auth.decorators import account_required

bp = Blueprint("account", __name__)


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
    )
