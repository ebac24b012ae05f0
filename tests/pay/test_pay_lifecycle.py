"""The refund lifecycle: accepted → settled by notification or query; short balance; closing."""

import logging
import re
import time

import requests

from support import LiveServer, WeChat, csrf_token, site_config, wechat_login
from test_pay_site import admin_refund, buy, pay
from wxsite import accounts, create_app, store
from wxsite.pay import reconcile as pay_reconcile

#: Words WeChat uses for states, which pages must never show.
RAW = ("PENDING", "PROCESSING", "SUCCESS", "ABNORMAL", "CLOSED", "FAILED", "NOTPAY", "NOT_ENOUGH")
LATER = 7 * 24 * 3600  # far enough ahead that every backoff and window is over


def paid(logged_in, live, emu, product="tea"):
    no, params, _ = buy(logged_in, live, product)
    pay(emu, params)
    return no


def run_reconcile(app, now):
    with app.app_context():
        return pay_reconcile.reconcile(store.get_db(), app.extensions["wxsite.pay"], now)


def refund_row(app, no):
    with app.app_context():
        return store.get_refund(store.get_db(), no)


def visible_text(html):
    return re.sub(r"<[^>]+>", " ", html)


def test_processing_refund_settles_by_query_when_the_notification_is_lost(
    logged_in, live, emu, app
):
    no = paid(logged_in, live, emu)
    emu.refund_mode("PROCESSING")
    result = app.test_cli_runner().invoke(
        args=["pay", "refund", no, "--amount", "800", "--request-id", "RFlost0000001"]
    )
    assert result.exit_code == 0 and "PROCESSING" in result.output, result.output
    assert "退款中" in logged_in.get(live.url("/orders")).text
    emu.move_refund("RFlost0000001", "SUCCESS", notify=False)  # its notification never came
    assert refund_row(app, "RFlost0000001")["status"] == "PROCESSING"
    assert run_reconcile(app, time.time() + 30)["queried"] == 0  # too soon to ask
    assert run_reconcile(app, time.time() + 120)["queried"] == 1
    assert refund_row(app, "RFlost0000001")["status"] == "SUCCESS"
    page = logged_in.get(live.url("/orders")).text
    assert "部分退款 ¥8.00" in page and "已退款" in page


def test_processing_refund_closed_or_abnormal_reads_as_failed(logged_in, live, emu, app):
    no = paid(logged_in, live, emu)
    emu.refund_mode("PROCESSING")
    runner = app.test_cli_runner()
    for number in ("RFclosed00001", "RFabnormal001"):
        assert runner.invoke(args=["pay", "refund", no, "--amount", "500", "--request-id", number])
    emu.move_refund("RFclosed00001", "CLOSED", notify=False)
    emu.move_refund("RFabnormal001", "ABNORMAL", notify=False)
    run_reconcile(app, time.time() + 120)
    assert refund_row(app, "RFclosed00001")["status"] == "CLOSED"
    assert refund_row(app, "RFabnormal001")["status"] == "ABNORMAL"
    page = logged_in.get(live.url("/orders")).text
    assert "退款失败（退款已关闭）" in page and "退款失败（收款账户异常" in page
    text = visible_text(page)
    assert not [word for word in RAW if word in text], text


def test_short_balance_stays_pending_and_is_retried_with_the_same_number(
    tmp_path, emu, phone, caplog
):
    app = create_app(site_config(tmp_path, emu, WXPAY_ADMINS="boss"))
    with app.app_context():
        accounts.create(store.get_db(), "boss", "a long password")
    live = LiveServer(app)
    try:
        wechat_login(phone, live)
        no = paid(phone, live, emu)  # 28.00
        WeChat(live, phone).bind("boss", "a long password")
        requests.post(emu.base_url + "/_emu/pay/balance", json={"unsettled": 0, "available": 0})
        caplog.set_level(logging.WARNING, logger="wxsite")
        page = phone.get(live.url("/pay/admin")).text
        form = {
            "csrf_token": csrf_token(page),
            "out_trade_no": no,
            "amount": "28",
            "request_id": "RFshort000001",
        }
        answer = admin_refund(phone, live, form)  # NOT_ENOUGH from unsettled, then available
        assert "商户余额不足" in answer.text and "RFshort000001" in answer.text
        row = refund_row(app, "RFshort000001")
        assert (row["status"], row["fail_reason"], row["attempts"]) == ("PENDING", "NOT_ENOUGH", 1)
        assert row["next_try_at"] > time.time()
        assert any("top up" in r.getMessage() for r in caplog.records)
        admin = phone.get(live.url("/pay/admin")).text
        assert 'id="top-up"' in admin and "1 笔退款（共 ¥28.00）" in admin
        assert not [w for w in RAW if w in visible_text(admin)], visible_text(admin)
        doctor = app.test_cli_runner().invoke(args=["wx", "doctor"])
        assert "top-up" in doctor.output, doctor.output
        # Still short at the next try: the backoff grows, the number stays.
        assert run_reconcile(app, row["next_try_at"] + 1)["retried"] == 1
        again = refund_row(app, "RFshort000001")
        assert again["attempts"] == 2 and again["next_try_at"] > row["next_try_at"] + 60
        requests.post(emu.base_url + "/_emu/pay/balance", json={"available": 5000})
        assert run_reconcile(app, time.time() + LATER)["retried"] == 1
        done = refund_row(app, "RFshort000001")
        assert done["status"] == "SUCCESS" and done["funds_account"] == "AVAILABLE"
        with app.app_context():
            assert store.get_db().scalar("SELECT COUNT(*) FROM refunds") == 1
        assert [r["out_refund_no"] for r in emu.pay_refunds()] == ["RFshort000001"]
        assert requests.get(emu.base_url + "/_emu/pay/balance").json()["available"] == 2200
        admin = phone.get(live.url("/pay/admin")).text
        assert 'id="top-up"' not in admin and "已退款" in admin
    finally:
        live.shutdown()


def test_admin_takes_yuan_and_asks_before_refunding(boss, emu, phone):
    app, live = boss
    no = paid(phone, live, emu)
    WeChat(live, phone).bind("boss", "a long password")
    page = phone.get(live.url("/pay/admin")).text
    assert "退款金额（元）" in page and 'value="28.00"' in page
    form = {"csrf_token": csrf_token(page), "out_trade_no": no, "amount": "3.5"}
    asked = phone.post(live.url("/pay/admin"), data=form)
    assert "确认退款 ¥3.50" in asked.text
    with app.app_context():  # asking is not refunding
        assert store.get_db().scalar("SELECT COUNT(*) FROM refunds") == 0
    for bad in ("abc", "1.234", "-1", "0"):
        refused = phone.post(live.url("/pay/admin"), data={**form, "amount": bad})
        assert "请输入退款金额（元）" in refused.text, bad
    done = admin_refund(phone, live, form)
    assert "已退款 ¥3.50" in done.text and "可退 ¥24.50" in done.text
    emu.refund_mode("PROCESSING")
    page = phone.get(live.url("/pay/admin")).text
    later = admin_refund(
        phone, live, {"csrf_token": csrf_token(page), "out_trade_no": no, "amount": "1"}
    )
    assert "已受理" in later.text and "退款中" in later.text
    assert not [w for w in RAW if w in visible_text(later.text)], visible_text(later.text)


def test_unpaid_order_is_closed_at_wechat_after_its_window(logged_in, live, emu, app):
    no, params, _ = buy(logged_in, live)
    assert run_reconcile(app, time.time() + 60)["closed"] == 0  # still in its window
    assert run_reconcile(app, time.time() + pay_reconcile.PAY_WINDOW + 1)["closed"] == 1
    with app.app_context():
        order = store.get_order(store.get_db(), no)
    assert order["state"] == "CLOSED" and order["closed_at"]
    answer = requests.post(emu.base_url + "/_emu/pay/confirm", json=params).json()
    assert not answer["ok"] and "closed" in answer["errMsg"]
    assert "已关闭" in logged_in.get(live.url("/orders")).text


def test_paid_order_is_not_closed(logged_in, live, emu, app):
    no, params, _ = buy(logged_in, live)
    pay(emu, params, notify=False)  # paid at WeChat, the site not told yet
    run_reconcile(app, time.time() + pay_reconcile.PAY_WINDOW + 1)
    with app.app_context():
        assert store.get_order(store.get_db(), no)["state"] == "SUCCESS"


def test_reconcile_command_runs_once(app, emu):
    result = app.test_cli_runner().invoke(args=["pay", "reconcile"])
    assert result.exit_code == 0 and "queried 0 refunds" in result.output, result.output


def test_pages_leave_reconciling_to_the_job(logged_in, live, emu, app, monkeypatch, tmp_path):
    runs = []
    monkeypatch.setattr(pay_reconcile, "reconcile", lambda *a, **k: runs.append(1) or {})
    no, _, _ = buy(logged_in, live)
    for _ in range(3):
        assert logged_in.get(live.url(f"/pay/orders/{no}")).status_code == 200
    assert runs == []  # no page waits for WeChat Pay queries any more
    # The pay.reconcile job: once per interval across every process (a shared turn).
    other = create_app(site_config(tmp_path, emu))
    with app.app_context():
        assert pay_reconcile.reconcile_job() == ""
    with other.app_context():
        assert pay_reconcile.reconcile_job() == "another process reconciled within the interval"
    with app.app_context():
        pay_reconcile.reconcile_job(now=time.time() + pay_reconcile.INTERVAL + 1)
    assert len(runs) == 2


def test_a_lost_refund_notification_is_settled_by_the_reconcile_job(logged_in, live, emu, app):
    no = paid(logged_in, live, emu)
    emu.refund_mode("PROCESSING")
    runner = app.test_cli_runner()
    assert runner.invoke(
        args=["pay", "refund", no, "--amount", "300", "--request-id", "RFjob00000001"]
    )
    emu.move_refund("RFjob00000001", "SUCCESS", notify=False)
    with app.app_context():
        answer = pay_reconcile.reconcile_job(now=time.time() + 120)
    assert answer == "queried 1, retried 0, closed 0"
    assert refund_row(app, "RFjob00000001")["status"] == "SUCCESS"
