"""A refund WeChat accepted (PROCESSING) is settled by its signed notification.

The emulator's ``move_refund`` signs and POSTs REFUND.SUCCESS / REFUND.ABNORMAL to the
refund's notify_url (/pay/refund-notify on the site that asked), as WeChat Pay does.
"""

from support import csrf_token
from test_pay_lifecycle import RAW, paid, refund_row, visible_text
from test_pay_site import admin_refund, bind
from wxsite import store


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
    bind(phone, live, "boss")
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
