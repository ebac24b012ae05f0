"""A refund WeChat accepted (PROCESSING) is settled by its signed notification.

The emulator's ``move_refund`` signs and POSTs REFUND.SUCCESS / REFUND.ABNORMAL to the
refund's notify_url (/pay/refund-notify on the site that asked), as WeChat Pay does.
"""

import logging
import time

import pytest
import requests

from support import WeChat, csrf_token
from test_pay_lifecycle import LATER, RAW, paid, refund_row, run_reconcile, visible_text
from test_pay_site import admin_refund
from wxsite import store
from wxsite.store import pay as pay_store
from wxsite.wechat.pay import PayError


def refund_on_admin(phone, live, no, yuan, number):
    page = phone.get(live.url("/pay/admin")).text
    form = {
        "csrf_token": csrf_token(page),
        "out_trade_no": no,
        "amount": yuan,
        "request_id": number,
    }
    answer = admin_refund(phone, live, form)
    assert "已受理" in answer.text, answer.text[-1500:]


def test_processing_refund_is_settled_by_its_notification(boss, emu, phone):
    app, live = boss
    no = paid(phone, live, emu)  # ¥28.00
    WeChat(live, phone).bind("boss", "a long password")
    emu.refund_mode("PROCESSING")
    refund_on_admin(phone, live, no, "8", "RFnote0000001")
    refund_on_admin(phone, live, no, "5", "RFnote0000002")
    assert refund_row(app, "RFnote0000001")["status"] == "PROCESSING"
    assert "退款中" in phone.get(live.url("/orders")).text

    moved = emu.move_refund("RFnote0000001", "SUCCESS")  # REFUND.SUCCESS, signed
    assert moved["notification"] == 204, moved
    assert refund_row(app, "RFnote0000001")["status"] == "SUCCESS"
    page = phone.get(live.url("/orders")).text
    assert "已退款" in page and "退款中" in page  # one back, the other still on its way

    moved = emu.move_refund("RFnote0000002", "ABNORMAL")  # REFUND.ABNORMAL, signed
    assert moved["notification"] == 204, moved
    assert refund_row(app, "RFnote0000002")["status"] == "ABNORMAL"
    page = phone.get(live.url("/orders")).text
    assert "退款失败（收款账户异常，需在商户平台处理）" in page
    assert "部分退款 ¥8.00" in page  # the order: what came back
    assert not [w for w in RAW if w in visible_text(page)], visible_text(page)
    with app.app_context():
        # ABNORMAL is not over (it may still succeed): its ¥5 stays counted.
        assert store.refundable(store.get_db(), no) == 2800 - 800 - 500
    assert "可退 ¥15.00" in phone.get(live.url("/pay/admin")).text


def refuse_available(app, monkeypatch, code="PARAM_ERROR"):
    """Make the merchant one on the new fund flow: WeChat Pay refuses funds_account AVAILABLE.

    The emulator answers every refund itself (no fault can be queued for the refund path),
    so only this refusal is played here; every other call still goes to the emulator.
    Return the (out_refund_no, funds_account) of every refund call, in order.
    """
    client = app.extensions["wxsite.pay"]
    real, calls = client.refund, []

    def refund(out_trade_no, out_refund_no, amount, total, notify_url=None, funds_account=None):
        calls.append((out_refund_no, funds_account))
        if funds_account == "AVAILABLE":
            raise PayError(code, "当前商户号不支持该资金账户", 400, "/v3/refund/domestic/refunds")
        return real(out_trade_no, out_refund_no, amount, total, notify_url, funds_account)

    monkeypatch.setattr(client, "refund", refund)
    return calls


@pytest.mark.parametrize("code", ["PARAM_ERROR", "INVALID_REQUEST"])
def test_a_refused_available_fallback_keeps_the_refund_pending(
    boss, emu, phone, monkeypatch, caplog, code
):
    app, live = boss
    no = paid(phone, live, emu)  # ¥28.00
    WeChat(live, phone).bind("boss", "a long password")
    requests.post(emu.base_url + "/_emu/pay/balance", json={"unsettled": 0, "available": 0})
    calls = refuse_available(app, monkeypatch, code)
    caplog.set_level(logging.INFO, logger="wxsite")
    page = phone.get(live.url("/pay/admin")).text
    form = {"csrf_token": csrf_token(page), "out_trade_no": no, "amount": "28"}
    form["request_id"] = "RFnewflow0001"
    answer = admin_refund(phone, live, form)
    assert "商户余额不足" in answer.text and "拒绝" not in answer.text, answer.text[-1500:]
    row = refund_row(app, "RFnewflow0001")
    assert (row["status"], row["fail_reason"], row["attempts"]) == ("PENDING", "NOT_ENOUGH", 1)
    assert calls == [("RFnewflow0001", None), ("RFnewflow0001", "AVAILABLE")]
    said = " ".join(r.getMessage() for r in caplog.records)
    assert code in said and "top up" in said, said
    assert 'id="top-up"' in phone.get(live.url("/pay/admin")).text
    # Topped up: the job's retry sends the same number, without funds_account this time.
    requests.post(emu.base_url + "/_emu/pay/balance", json={"unsettled": 5000})
    assert run_reconcile(app, time.time() + LATER)["retried"] == 1
    assert calls[2:] == [("RFnewflow0001", None)]
    done = refund_row(app, "RFnewflow0001")
    assert done["status"] == "SUCCESS" and done["funds_account"] == "UNSETTLED"
    assert [r["out_refund_no"] for r in emu.pay_refunds()] == ["RFnewflow0001"]


def test_doctor_says_the_job_retries_short_refunds_by_itself(app, runner, logged_in):
    with app.app_context():
        db = store.get_db()
        person = db.scalar("SELECT person_id FROM wechat_users LIMIT 1")
        store.create_order(db, "WXSHORT0001", person, "wx", "o", "tea", "一壶茶", 2800)
        store.mark_paid(db, "WXSHORT0001", "42WXSHORT0001", time.time())
        store.start_refund(db, "RFshortdoc01", "WXSHORT0001", 2800)
        pay_store.defer_refund(db, "RFshortdoc01", "NOT_ENOUGH", time.time() + 60)
    said = " ".join(runner.invoke(args=["wx", "doctor"]).output.split())
    assert "1 refunds (¥28.00)" in said and "needs a top-up" in said, said
    assert "the pay.reconcile job (every minute, in `wx worker`) retries them by itself" in said
    assert "then `flask --app wsgi pay reconcile` retries" not in said
    assert "`flask --app wsgi pay reconcile --topped-up` retries them at once" in said, said
