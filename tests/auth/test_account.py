"""/account (the seed's 校验用户是否绑定已有账号): bound people only; unbound → bind → back."""

from test_session import carol_on_two_appids
from wxsite import accounts, store


def test_unbound_goes_to_bind_and_comes_back(app, logged_in, live, wechat):
    with app.app_context():
        accounts.create(store.get_db(), "alice", "correct horse battery", "爱丽丝")
    first = logged_in.get(live.url("/account"), allow_redirects=False)
    assert first.status_code == 302 and first.headers["Location"] == "/auth/bind?next=/account"
    page = logged_in.get(live.url(first.headers["Location"]))
    assert 'name="next" value="/account"' in page.text
    bound = wechat.bind("alice", "correct horse battery", next="/account")
    assert bound.url == live.url("/account")
    assert "爱丽丝" in bound.text and "账号 alice" in bound.text
    assert "当前" in bound.text and "还没有订单" in bound.text


def test_home_links_to_the_account_page(client):
    assert 'href="/account"' in client.get("/").text


def test_account_shows_identities_of_both_appids_and_orders(tmp_path, emu):
    with carol_on_two_appids(tmp_path, emu) as (site1, live1, live2, phone, other):
        with site1.app_context():
            db = store.get_db()
            person = db.scalar("SELECT person_id FROM wechat_users LIMIT 1")
            store.create_order(db, "WXACCOUNT1", person, "wx", "o", "coffee", "一杯咖啡", 1200)
        page = other.get("/account").text
        assert page.count('class="cell"') >= 2
        assert "本公众号" in page and "其他公众号" in page
        assert "一杯咖啡 · ¥12.00" in page and "待支付" in page
