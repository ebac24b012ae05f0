"""Pay faults found under attack (issue 11): lost notifications, refund matching and states,
refund numbers, polling that spends the merchant's quota."""

import re
import time
from functools import partial

import pytest
import requests

from support import (
    WeChat,
    add_failing_trigger,
    csrf_token,
    drop_trigger,
    in_parallel,
)
from test_pay_site import admin_refund, buy, notifications, pay
from wxsite import store
from wxsite.inbound.views import notification_key
from wxsite.pay import apply as pay_apply
from wxsite.pay import views as pay_views


def order_state(app, no):
    with app.app_context():
        return store.get_order(store.get_db(), no)["state"]


def test_a_notification_that_fails_midway_is_applied_by_the_retry(logged_in, live, emu, app):
    no, params, _ = buy(logged_in, live)
    with app.app_context():
        # The order update fails once (a lock past the timeout, a bug, a killed worker…).
        add_failing_trigger(store.get_db(), "fail_once", "orders", "UPDATE OF state")
    pay(emu, params)
    sent = notifications(emu)[-1]
    assert sent["status"] >= 500  # WeChat will deliver it again
    with app.app_context():
        drop_trigger(store.get_db(), "fail_once", "orders")
        assert store.get_db().scalar("SELECT COUNT(*) FROM deliveries") == 0
    retry = requests.post(
        live.url("/pay/notify"), data=sent["body"].encode(), headers=sent["headers"]
    )
    assert retry.status_code == 204
    assert order_state(app, no) == "SUCCESS"


def test_notifications_without_an_id_do_not_share_a_key():
    first = {"event_type": "REFUND.SUCCESS", "resource": {"out_refund_no": "A"}}
    second = {"event_type": "REFUND.SUCCESS", "resource": {"out_refund_no": "B"}}
    key = notification_key
    assert key(first) != key(second)
    assert key(first) == key(dict(first))
    assert key({**first, "id": "n-1"}) == "pay:n-1"


@pytest.fixture
def refunded(logged_in, live, emu, app):
    """A paid 12.00 order with a PROCESSING refund of 5.00 (RF-TEST-1)."""
    no, params, _ = buy(logged_in, live)
    pay(emu, params)
    with app.app_context():
        db = store.get_db()
        store.start_refund(db, "RF-TEST-1", no, 500)
        store.update_refund(db, "RF-TEST-1", "PROCESSING")
    return no


@pytest.mark.parametrize(
    "change",
    [
        {"out_trade_no": "WX-another-order"},
        {"amount": {"refund": 499, "total": 1200}},
        {"amount": "500"},
        {"out_refund_no": "RF-unknown"},
    ],
    ids=["order", "amount", "amount-not-object", "number"],
)
def test_a_refund_notification_must_match_its_refund(app, refunded, change):
    genuine = {
        "mchid": app.config["WXPAY_MCHID"],
        "out_trade_no": refunded,
        "out_refund_no": "RF-TEST-1",
        "refund_status": "CLOSED",
        "amount": {"refund": 500, "total": 1200},
    }
    with app.test_request_context():
        pay_apply.apply_refund({**genuine, **change})
        assert store.get_refund(store.get_db(), "RF-TEST-1")["status"] == "PROCESSING"
        pay_apply.apply_refund(genuine)
        assert store.get_refund(store.get_db(), "RF-TEST-1")["status"] == "CLOSED"


def test_abnormal_refund_is_not_refundable_again(app, refunded):
    with app.app_context():
        db = store.get_db()
        store.update_refund(db, "RF-TEST-1", "ABNORMAL")
        assert store.refundable(db, refunded) == 700
        with pytest.raises(ValueError):
            store.start_refund(db, "RF-TEST-2", refunded, 1200)
        # A late PROCESSING answer does not take ABNORMAL back; the hand-settled SUCCESS does.
        store.update_refund(db, "RF-TEST-1", "PROCESSING")
        assert store.get_refund(db, "RF-TEST-1")["status"] == "ABNORMAL"
        store.update_refund(db, "RF-TEST-1", "SUCCESS")
        store.update_refund(db, "RF-TEST-1", "CLOSED")
        assert store.get_refund(db, "RF-TEST-1")["status"] == "SUCCESS"


def test_closed_refund_frees_its_amount(app, refunded):
    with app.app_context():
        db = store.get_db()
        store.update_refund(db, "RF-TEST-1", "CLOSED")
        assert store.refundable(db, refunded) == 1200


class _OneSecond:
    """The time module, except that every order number is stamped with the same second."""

    def __getattr__(self, name):
        return getattr(time, name)

    def strftime(self, fmt, *args):
        return time.strftime(fmt, time.localtime(1764561600))


def test_admin_refund_numbers_differ_for_orders_of_the_same_second(boss, emu, phone, monkeypatch):
    app, live = boss
    WeChat(live, phone).bind("boss", "a long password")
    # Both orders made in one second, as under load: their numbers share the timestamp.
    monkeypatch.setattr(pay_views, "time", _OneSecond())
    first, params, _ = buy(phone, live)
    pay(emu, params)
    second, params, _ = buy(phone, live)
    pay(emu, params)
    assert first[2:16] == second[2:16]
    with app.app_context():
        store.get_db().execute("UPDATE orders SET created_at = 1764000000")
    requests.post(emu.base_url + "/_emu/pay/balance", json={"unsettled": 0, "available": 9000})
    page = phone.get(live.url("/pay/admin")).text
    numbers = re.findall(r'name="request_id" value="([^"]+)"', page)
    assert len(numbers) == 2 and len(set(numbers)) == 2
    for no in (first, second):
        page = phone.get(live.url("/pay/admin")).text
        form = re.search(
            rf'name="out_trade_no" value="{no}">\s*<input type="hidden" name="request_id" '
            r'value="([^"]+)"',
            page,
        )
        answer = admin_refund(
            phone,
            live,
            {
                "csrf_token": csrf_token(page),
                "out_trade_no": no,
                "amount": "12",
                "request_id": form.group(1),
            },
        )
        assert "已退款 ¥12.00" in answer.text
    with app.app_context():
        assert {r["out_trade_no"] for r in store.get_db().query("SELECT * FROM refunds")} == {
            first,
            second,
        }


def test_status_polls_share_one_pay_query(logged_in, live, emu, caplog, monkeypatch):
    monkeypatch.setattr(pay_views, "QUERY_INTERVAL", 3600)
    caplog.set_level("INFO", logger="wxsite.pay")
    caplog.set_level("INFO", logger="wxsite.wechat")
    no, params, _ = buy(logged_in, live)
    cookie = logged_in.cookies.get("wxsite_session")
    sessions = []
    for _ in range(20):
        session = requests.Session()
        session.headers.update(logged_in.headers)
        session.cookies.set("wxsite_session", cookie)
        sessions.append(session)
    status = live.url(f"/pay/orders/{no}/status")
    states = [r.json()["state"] for r in in_parallel([partial(s.get, status) for s in sessions])]
    queries = [r for r in caplog.records if "out-trade-no" in r.getMessage()]
    assert states == ["NOTPAY"] * 20
    assert len(queries) == 1, [r.getMessage() for r in queries]
