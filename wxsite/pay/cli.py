"""``flask pay …``: refunds and the periodic pay work from the command line."""

import click
from flask.cli import AppGroup

from .. import clock, store, wx
from ..logs import quiet
from ..store import pay as pay_store
from .products import yuan
from .reconcile import PAY_WINDOW, QUERY_AFTER, reconcile
from .refunds import RefundError, notify_url, refund

pay_cli = AppGroup("pay", help="WeChat Pay: refunds, reconciling with WeChat.")


def _client():
    client = wx.pay_client()
    if client is None:
        raise click.ClickException("WeChat Pay is not configured (WXPAY_* settings)")
    return client


@pay_cli.command("refund")
@click.argument("out_trade_no")
@click.option("--amount", type=int, default=None, help="Fen to refund (default: all that is left).")
@click.option(
    "--request-id", default=None, help="out_refund_no; repeat it to retry the same refund safely."
)
@quiet
def refund_command(out_trade_no, amount, request_id):
    """Refund an order, fully or in part (falls back to available funds when needed).

    Example: flask --app wsgi pay refund WX20261124120000abc --amount 500
    """
    if amount is not None and amount == 0:
        raise click.ClickException("--amount 0: nothing to refund (leave it out to refund all)")
    if amount is not None and amount < 0:
        raise click.ClickException(f"--amount {amount}: an amount in fen above 0, e.g. 500")
    client = _client()
    db = store.get_db()
    try:
        # A CLI has no request: WXSITE_PUBLIC_URL says where notifications go.
        row = refund(db, client, out_trade_no, amount, request_id, notify_url())
    except RefundError as exc:
        raise click.ClickException(_refused(db, out_trade_no, amount, request_id, exc))
    click.echo(
        f"refund {row['out_refund_no']}: {yuan(row['amount'])} 元, {row['status']}, "
        f"funds {row['funds_account'] or '-'}"
    )
    if row["status"] == "PENDING":
        click.echo(
            "the merchant balance is short: top it up; the pay.reconcile job retries this "
            "refund by itself with the same number (`pay reconcile --topped-up`: at once)",
            err=True,
        )


def _refused(db, out_trade_no, amount, request_id, exc):
    """Say in the operator's words why the store refused a refund (else the site's words)."""
    if exc.reason == RefundError.NO_ORDER:
        return f"no order {out_trade_no}"
    if exc.reason == store.RefundRefused.NUMBER_REUSED:
        return f"--request-id {request_id} is already the number of another refund"
    order = store.get_order(db, out_trade_no)
    if exc.reason == store.RefundRefused.NOT_PAID:
        return f"order {out_trade_no} is {order['state']}, not paid"
    if exc.reason == store.RefundRefused.TOO_MUCH:
        left = store.refundable(db, out_trade_no)
        if left <= 0:
            return (
                f"order {out_trade_no} is fully refunded ({yuan(order['amount'])} 元): nothing left"
            )
        return (
            f"--amount {amount}: only {left} fen ({yuan(left)} 元) of the order are left to refund"
        )
    return str(exc)


@pay_cli.command("reconcile")
@click.option(
    "--topped-up",
    is_flag=True,
    help="The merchant balance was just topped up: retry the refunds waiting for it now.",
)
@quiet
def reconcile_command(topped_up):
    """Run the periodic pay work once: query, retry, close (safe to run from cron).

    Queries refunds PROCESSING for over a minute (lost notifications), retries PENDING
    refunds whose backoff is due with the same out_refund_no, and closes at WeChat the
    unpaid orders older than the two-hour payment window. With --topped-up, refunds that
    wait for a balance top-up are retried now instead of at their backoff (up to 6 hours).

    Example: flask --app wsgi pay reconcile --topped-up
    """
    db = store.get_db()
    if topped_up:
        due = pay_store.retry_short_now(db, clock.now() - QUERY_AFTER)
        click.echo(f"{due} refunds waiting for a top-up are due now")
    done = reconcile(db, _client())
    count, fen = pay_store.short_refunds(db)
    click.echo(
        f"queried {done['queried']} refunds (PROCESSING > {QUERY_AFTER}s), retried "
        f"{done['retried']}, closed {done['closed']} orders (unpaid > {PAY_WINDOW // 3600}h)"
    )
    if count:
        click.echo(f"{count} refunds ({yuan(fen)} 元) wait for a merchant balance top-up", err=True)
