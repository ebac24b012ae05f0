"""``flask pay refund``: each refusal in its own words, before anything reaches WeChat."""

import pytest
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
