"""``wx db copy``: a SQLite site moves to PostgreSQL with everything it holds (issue 12 item 7)."""

import pytest

from support import ENGINE, postgres_server
from wxsite import accounts, store
from wxsite.wechat.oauth import WebToken

pytestmark = pytest.mark.skipif(ENGINE != "sqlite", reason="copies a SQLite site")


def a_site(db):
    """Fill a SQLite site with one of everything a copy must move."""
    account = accounts.create(db, "alice", "correct horse battery")
    person = store.get_wechat_user(
        db, store.save_wechat_login(db, "wxA", WebToken("o1", "t", "r", 7200, "snsapi_base", "U"))
    )["person_id"]
    other = store.get_wechat_user(
        db, store.save_wechat_login(db, "wxA", WebToken("o2", "t", "r", 7200, "snsapi_base"))
    )["person_id"]
    store.bind_account(db, person, account)
    store.create_login(db, "login-1", 1)
    store.add_upload(db, person, "image", "m1", "images/a.jpg", "sha", 10, "image/jpeg")
    store.referral_code(db, person, "CODE0001")
    store.record_share_visit(db, person, other)
    store.create_order(db, "WX1", person, "wxA", "o1", "tea", "一杯茶", 2800)
    store.mark_paid(db, "WX1", "tx1", "2026-12-01T10:00:00+08:00")
    store.start_refund(db, "RF1", "WX1", 800)
    store.record_delivery(db, "pay:n-1", "TRANSACTION.SUCCESS")
    store.set_follow(db, "wxA", "o1", True, 1764000000)


def test_copy_moves_a_site_and_the_target_keeps_numbering(app, runner):
    with app.app_context():
        a_site(store.get_db())
    target = postgres_server().create_database()
    result = runner.invoke(args=["wx", "db", "copy", target])
    assert result.exit_code == 0, result.output
    assert "counts match" in result.output
    db = store.connect(target)
    try:
        assert store.counts(db)["refunds"] == 1 and store.counts(db)["people"] == 2
        assert accounts.authenticate(db, "ALICE", "correct horse battery")["id"] == 1
        assert store.refundable(db, "WX1") == 2000
        assert store.person_by_referral(db, "CODE0001") == 1
        # New rows continue after the copied ids instead of colliding with them.
        assert accounts.create(db, "bob", "another password") == 2
    finally:
        db.close()
    again = runner.invoke(args=["wx", "db", "copy", target])
    assert again.exit_code != 0 and "already holds a site" in again.output


def test_copy_names_a_bad_target_without_its_password(runner):
    result = runner.invoke(args=["wx", "db", "copy", "postgresql://u:s3cret@127.0.0.1:1/nowhere"])
    assert result.exit_code != 0
    assert "WXSITE_DATABASE" in result.output and "s3cret" not in result.output
