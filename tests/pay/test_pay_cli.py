"""``flask pay refund``: each refusal in its own words, before anything reaches WeChat."""

import pytest
import requests
from test_pay_site import paid

from wxsite import store


@pytest.mark.parametrize(
    "amount, words",
    [("0", "--amount 0: nothing to refund"), ("-5", "--amount -5: an amount in fen above 0")],
)
def test_zero_and_negative_amounts_are_refused(logged_in, live, emu, app, amount, words):
    no = paid(logged_in, live, emu)
    result = app.test_cli_runner().invoke(args=["pay", "refund", no, "--amount", amount])
    assert result.exit_code == 1 and words in result.output, result.output
    with app.app_context():
        assert store.refundable(store.get_db(), no) == 2800  # nothing reserved


def test_a_fully_refunded_order_says_so(logged_in, live, emu, app):
    no = paid(logged_in, live, emu)
    runner = app.test_cli_runner()
    assert runner.invoke(args=["pay", "refund", no]).exit_code == 0
    again = runner.invoke(args=["pay", "refund", no])
    assert again.exit_code == 1 and "is fully refunded (28.00 元)" in again.output, again.output


def test_an_unknown_order_is_named(app):
    result = app.test_cli_runner().invoke(args=["pay", "refund", "WX0000"])
    assert result.exit_code == 1 and "no order WX0000" in result.output


def test_topped_up_retries_the_refunds_waiting_for_it_at_once(logged_in, live, emu, app):
    no = paid(logged_in, live, emu)
    requests.post(emu.base_url + "/_emu/pay/balance", json={"unsettled": 0, "available": 0})
    runner = app.test_cli_runner()
    short = runner.invoke(args=["pay", "refund", no, "--request-id", "RFtopup000001"])
    assert short.exit_code == 0 and "PENDING" in short.output, short.output
    assert "--topped-up" in short.output
    with app.app_context():  # deferred two minutes ago, with an hour of backoff to go
        store.get_db().execute(
            "UPDATE refunds SET updated_at = updated_at - 120, next_try_at = next_try_at + 3600"
        )
    requests.post(emu.base_url + "/_emu/pay/balance", json={"available": 5000})
    # Without the flag the refund waits out its backoff: nothing is sent.
    assert "retried 0" in runner.invoke(args=["pay", "reconcile"]).output
    done = runner.invoke(args=["pay", "reconcile", "--topped-up"])
    assert "1 refunds waiting for a top-up are due now" in done.output, done.output
    assert "retried 1" in done.output, done.output
    with app.app_context():
        row = store.get_refund(store.get_db(), "RFtopup000001")
    assert row["status"] == "SUCCESS" and row["funds_account"] == "AVAILABLE"
    assert [r["out_refund_no"] for r in emu.pay_refunds()] == ["RFtopup000001"]  # one number
    # Nothing left waiting: the flag again changes nothing.
    assert "0 refunds waiting" in runner.invoke(args=["pay", "reconcile", "--topped-up"]).output
