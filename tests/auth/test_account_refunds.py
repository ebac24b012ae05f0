"""/account words its orders as /orders does (refunds included) and shows since when."""

import re
import time

from support import WeChat
from wxsite import accounts, clock, store

#: WeChat's state names, which pages never show.
RAW = ("PENDING", "PROCESSING", "SUCCESS", "ABNORMAL", "CLOSED", "FAILED", "NOTPAY", "REFUND")


def feet(html):
    """Return the texts of the page's order cells (their right-hand words)."""
    return re.findall(r'<span class="cell-foot">([^<]*)</span>', html)


def paid_order(db, no, person, amount):
    store.create_order(db, no, person, "wx", "o", "tea", "一壶茶", amount)
    store.mark_paid(db, no, "42" + no, time.time())


def test_account_words_orders_like_the_orders_page(app, logged_in, live):
    with app.app_context():
        db = store.get_db()
        accounts.create(db, "alice", "correct horse battery", "爱丽丝")
        since = db.scalar("SELECT created_at FROM accounts WHERE username = 'alice'")
        person = db.scalar("SELECT person_id FROM wechat_users LIMIT 1")
        paid_order(db, "WXPART00001", person, 2800)  # ¥28, ¥8 back
        store.start_refund(db, "RFpart000001", "WXPART00001", 800)
        store.update_refund(db, "RFpart000001", "SUCCESS")
        paid_order(db, "WXWAIT00001", person, 1200)  # a refund in progress
        store.start_refund(db, "RFwait000001", "WXWAIT00001", 1200)
        store.update_refund(db, "RFwait000001", "PROCESSING")
        paid_order(db, "WXDONE00001", person, 500)  # all of it back
        store.start_refund(db, "RFdone000001", "WXDONE00001", 500)
        store.update_refund(db, "RFdone000001", "SUCCESS")
    page = WeChat(live, logged_in).bind("alice", "correct horse battery", next="/account")
    assert page.url == live.url("/account")
    words = feet(logged_in.get(live.url("/orders")).text)
    assert {"部分退款 ¥8.00", "退款中", "已退款"} <= set(words), words
    mine = feet(page.text)
    for word in ("部分退款 ¥8.00", "退款中", "已退款"):
        assert word in mine, mine
    assert not [w for w in RAW if w in re.sub(r"<[^>]+>", " ", page.text)]
    day = clock.china_time(since, "%Y-%m-%d")
    assert re.search(rf"账号 alice · {day} \d\d:\d\d 注册", page.text), page.text
