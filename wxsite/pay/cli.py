"""``flask pay …``: refunds from the command line (the operator's tool)."""

import click
from flask import current_app, url_for
from flask.cli import AppGroup

from .. import store, wx
from .products import yuan
from .refunds import RefundError, refund

pay_cli = AppGroup("pay", help="WeChat Pay: refunds.")


@pay_cli.command("refund")
@click.argument("out_trade_no")
@click.option("--amount", type=int, default=None, help="Fen to refund (default: all that is left).")
@click.option(
    "--request-id", default=None, help="out_refund_no; repeat it to retry the same refund safely."
)
def refund_command(out_trade_no, amount, request_id):
    """Refund an order, fully or in part (falls back to available funds when needed).

    Example: flask --app wsgi pay refund WX20261124120000abc --amount 500
    """
    client = wx.pay_client()
    if client is None:
        raise click.ClickException("WeChat Pay is not configured (WXPAY_* settings)")
    notify_url = None
    public = current_app.config["WXSITE_PUBLIC_URL"]
    if public:  # a CLI has no request: the public base says where notifications go
        with current_app.test_request_context(base_url=public):
            notify_url = url_for("inbound.refund_notify", _external=True)
    try:
        row = refund(store.get_db(), client, out_trade_no, amount, request_id, notify_url)
    except RefundError as exc:
        raise click.ClickException(str(exc))
    click.echo(
        f"refund {row['out_refund_no']}: {yuan(row['amount'])} 元, {row['status']}, "
        f"funds {row['funds_account'] or '-'}"
    )
