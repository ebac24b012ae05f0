"""Paying on the site: order → pay (emulator) → notification → paid; refunds; bad notifications."""

import json
import re

import pytest
import requests

from support import WeChat, csrf_token, site_config
from wxsite import config, create_app
from wxsite.wechat import protocol


def buy(phone, live, product="coffee"):
    page = phone.get(live.url("/pay/"))
    assert page.status_code == 200 and "一杯咖啡" in page.text
    response = phone.post(
        live.url("/pay/orders"), data={"csrf_token": csrf_token(page.text), "product": product}
    )
    assert response.status_code == 200, response.text[:300]
    no = response.url.rstrip("/").split("/")[-1]
    params = json.loads(re.search(r'id="pay-params">(.*?)</script>', response.text).group(1))
    return no, params, response


def pay(emu, params, notify=True):
    answer = requests.post(
        emu.base_url + "/_emu/pay/confirm", json={**params, "notify": notify}
    ).json()
    assert answer["ok"], answer


def state(phone, live, no):
    return phone.get(live.url(f"/pay/orders/{no}/status")).json()["state"]


def notifications(emu):
    return requests.get(emu.base_url + "/_emu/pay/notifications").json()


def test_order_pay_notification_paid(logged_in, live, emu):
    no, params, page = buy(logged_in, live)
    assert 'id="wx-config"' in page.text and "chooseWXPay" in page.text and "待支付" in page.text
    pay(emu, params)
    sent = notifications(emu)[-1]
    assert sent["status"] == 204 and sent["url"] == live.url("/pay/notify")
    assert state(logged_in, live, no) == "SUCCESS"
    assert "已支付" in logged_in.get(live.url(f"/pay/orders/{no}")).text
    assert "已支付" in logged_in.get(live.url("/orders")).text


def test_lost_notification_is_covered_by_a_query(logged_in, live, emu):
    no, params, _ = buy(logged_in, live)
    pay(emu, params, notify=False)
    assert state(logged_in, live, no) == "SUCCESS"


def test_replayed_notification_changes_nothing_twice(logged_in, live, emu, app):
    no, params, _ = buy(logged_in, live)
    pay(emu, params)
    sent = notifications(emu)[-1]
    again = requests.post(
        live.url("/pay/notify"), data=sent["body"].encode(), headers=sent["headers"]
    )
    assert again.status_code == 204
    with app.app_context():
        from wxsite import store

        assert store.get_db().scalar("SELECT COUNT(*) FROM deliveries") == 1


@pytest.mark.parametrize(
    "tamper",
    [
        lambda h, b: (h, b.replace("TRANSACTION.SUCCESS", "TRANSACTION.SUCCES5")),
        lambda h, b: ({**h, "Wechatpay-Signature": h["Wechatpay-Signature"][::-1]}, b),
        lambda h, b: ({**h, "Wechatpay-Timestamp": str(int(h["Wechatpay-Timestamp"]) - 3600)}, b),
        lambda h, b: ({k: v for k, v in h.items() if k != "Wechatpay-Serial"}, b),
    ],
    ids=["body", "signature", "stale", "no-serial"],
)
def test_tampered_or_stale_notifications_are_refused(logged_in, live, emu, tamper):
    no, params, _ = buy(logged_in, live)
    pay(emu, params, notify=False)
    requests.post(emu.base_url + f"/_emu/pay/notify/{no}")  # genuine one, recorded
    sent = notifications(emu)[-1]
    logged_in.get(live.url("/"))  # nothing else touches the order
    headers, body = tamper(sent["headers"], sent["body"])
    fresh_no, fresh_params, _ = buy(logged_in, live)
    response = requests.post(live.url("/pay/notify"), data=body.encode(), headers=headers)
    assert response.status_code == 401 and response.json()["code"] == "FAIL"
    assert logged_in.get(live.url(f"/pay/orders/{fresh_no}")).text.count("待支付") >= 1


def test_payment_notification_after_a_refund_changes_nothing(logged_in, live, emu, app):
    no, params, _ = buy(logged_in, live)
    pay(emu, params)
    runner = app.test_cli_runner()
    assert runner.invoke(args=["pay", "refund", no]).exit_code == 0
    requests.post(emu.base_url + f"/_emu/pay/notify/{no}")  # a late, out-of-order repeat
    with app.app_context():
        from wxsite import store

        assert store.get_order(store.get_db(), no)["state"] == "REFUND"


def paid(logged_in, live, emu, product="tea"):
    no, params, _ = buy(logged_in, live, product)
    pay(emu, params)
    return no


def test_refunds_full_partial_over_and_duplicate(logged_in, live, emu, app):
    no = paid(logged_in, live, emu)  # 2800 fen
    runner = app.test_cli_runner()
    part = runner.invoke(
        args=["pay", "refund", no, "--amount", "800", "--request-id", "RF2026112400001"]
    )
    assert part.exit_code == 0 and "8.00 元, SUCCESS, funds UNSETTLED" in part.output, part.output
    again = runner.invoke(
        args=["pay", "refund", no, "--amount", "800", "--request-id", "RF2026112400001"]
    )
    assert again.exit_code == 0 and "RF2026112400001" in again.output
    over = runner.invoke(args=["pay", "refund", no, "--amount", "2500"])
    assert over.exit_code == 1 and "only 2000 fen (20.00 元)" in over.output, over.output
    rest = runner.invoke(args=["pay", "refund", no])
    assert rest.exit_code == 0 and "20.00 元" in rest.output
    balance = requests.get(emu.base_url + "/_emu/pay/balance").json()
    assert balance["unsettled"] == 0  # exactly 2800 went back, once
    page = logged_in.get(live.url("/orders")).text
    assert page.count("退款 ¥") == 2 and "已退款" in page


def test_refund_falls_back_to_available_funds(logged_in, live, emu, app):
    no = paid(logged_in, live, emu)
    requests.post(emu.base_url + "/_emu/pay/balance", json={"unsettled": 0, "available": 10_000})
    result = app.test_cli_runner().invoke(args=["pay", "refund", no, "--amount", "1000"])
    assert result.exit_code == 0 and "funds AVAILABLE" in result.output, result.output
    assert requests.get(emu.base_url + "/_emu/pay/balance").json()["available"] == 9000
    assert "可用余额出资" in logged_in.get(live.url("/orders")).text


def test_refund_of_an_unpaid_order_is_refused(logged_in, live, emu, app):
    no, _, _ = buy(logged_in, live)
    result = app.test_cli_runner().invoke(args=["pay", "refund", no])
    assert result.exit_code == 1 and "NOTPAY, not paid" in result.output, result.output


def test_someone_elses_order_is_404(logged_in, live, emu):
    no, _, _ = buy(logged_in, live)
    other = WeChat(live)
    other.login(user="lisi")
    assert other.get(f"/pay/orders/{no}").status_code == 404
    assert no not in other.get("/orders").text


def test_pay_is_off_in_production_without_merchant(tmp_path, emu):
    app = create_app(
        site_config(
            tmp_path, emu, WX_APPID="wx0123456789abcdef", WX_SECRET="x", WX_API_BASE=emu.base_url
        )
    )
    client = app.test_client()
    assert app.extensions["wxsite.pay"] is None
    assert client.post("/pay/notify", data="{}").status_code == 404


@pytest.mark.parametrize(
    "environ,name",
    [
        ({"WXPAY_MCHID": "1900000109"}, "WXPAY_PRIVATE_KEY_FILE"),
        (
            {
                "WXPAY_MCHID": "1",
                "WXPAY_PRIVATE_KEY_FILE": "/nonexistent.pem",
                "WXPAY_CERT_SERIAL": "S",
                "WXPAY_APIV3_KEY": "k" * 32,
                "WXPAY_PUBLIC_KEY_FILE": "/nonexistent.pem",
                "WXPAY_PUBLIC_KEY_ID": "P",
            },
            "WXPAY_PRIVATE_KEY_FILE",
        ),
        (
            {
                "WXPAY_MCHID": "1",
                "WXPAY_PRIVATE_KEY_FILE": "/etc/hostname",
                "WXPAY_CERT_SERIAL": "S",
                "WXPAY_APIV3_KEY": "short",
                "WXPAY_PUBLIC_KEY_FILE": "/etc/hostname",
                "WXPAY_PUBLIC_KEY_ID": "P",
            },
            "WXPAY_APIV3_KEY",
        ),
    ],
)
def test_bad_pay_config_names_the_variable(environ, name):
    with pytest.raises(config.ConfigError) as info:
        config.load(environ)
    assert str(info.value).startswith(name)


def test_unparsable_key_file_is_a_config_error(tmp_path, emu):
    bad = tmp_path / "key.pem"
    bad.write_text("not a key")
    settings = dict(
        WXPAY_MCHID="1",
        WXPAY_PRIVATE_KEY_FILE=str(bad),
        WXPAY_CERT_SERIAL="S",
        WXPAY_APIV3_KEY="k" * 32,
        WXPAY_PUBLIC_KEY_FILE=str(bad),
        WXPAY_PUBLIC_KEY_ID="P",
    )
    with pytest.raises(config.ConfigError, match="^WXPAY_PRIVATE_KEY_FILE is not a usable PEM key"):
        create_app(site_config(tmp_path, emu, **settings))


def test_secrets_never_in_logs(logged_in, live, emu, caplog):
    caplog.set_level("DEBUG")
    no, params, _ = buy(logged_in, live)
    pay(emu, params)
    ours = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("wxsite"))
    assert protocol.EMULATOR_APIV3_KEY not in ours and params["paySign"] not in ours


def admin_refund(phone, live, form):
    """Refund on /pay/admin as a person does: the amount in yuan, then the confirmation."""
    asked = phone.post(live.url("/pay/admin"), data=form)
    assert asked.status_code == 200 and "确认退款" in asked.text, asked.text[:300]
    fields = dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)"', asked.text))
    assert fields["confirm"] == "yes" and float(fields["amount"]) == float(form["amount"])
    return phone.post(live.url("/pay/admin"), data=fields)


def test_admin_page_refunds_for_admins_only(boss, emu, phone):
    app, live = boss
    no, params, _ = buy(phone, live)
    pay(emu, params)
    assert phone.get(live.url("/pay/admin")).url.endswith("/auth/bind?next=/pay/admin")
    WeChat(live, phone).bind("boss", "a long password")
    requests.post(emu.base_url + "/_emu/pay/balance", json={"unsettled": 0, "available": 5000})
    page = phone.get(live.url("/pay/admin"))
    assert no in page.text and "可退 ¥12.00" in page.text
    form = {
        "csrf_token": csrf_token(page.text),
        "out_trade_no": no,
        "amount": "5.00",
        "request_id": "RFadmin000001",
    }
    first = admin_refund(phone, live, form)
    toast = re.findall(r"<div class=\"toast[^>]*>([^<]*)<", first.text)
    assert "已退款 ¥5.00（可用余额）" in first.text, toast
    again = admin_refund(phone, live, form)  # a double submit: the same refund
    assert "已退款 ¥5.00" in again.text and "可退 ¥7.00" in again.text
    assert requests.get(emu.base_url + "/_emu/pay/balance").json()["available"] == 4500
    assert phone.post(live.url("/pay/admin"), data={**form, "csrf_token": ""}).status_code == 400


def test_admin_page_is_404_for_everyone_else(logged_in, wechat, live, emu, app):
    from wxsite import accounts, store

    with app.app_context():
        accounts.create(store.get_db(), "alice", "a long password")
    wechat.bind("alice", "a long password")
    assert logged_in.get(live.url("/pay/admin")).status_code == 404
