"""Merging two people by UnionID moves everything either owned (RELIABILITY 65)."""

import pytest

from support import database
from wxsite import store
from wxsite.wechat.oauth import WebToken


@pytest.fixture
def db(tmp_path):
    db = store.connect(database(tmp_path, "merge"))
    store.migrate(db)
    yield db
    db.close()


def login(db, appid, openid, unionid=None):
    wechat_user_id = store.save_wechat_login(
        db, appid, WebToken(openid, "t", "r", 7200, "snsapi_base", unionid)
    )
    return store.get_wechat_user(db, wechat_user_id)["person_id"]


def upload(db, person, sha, path):
    row, _ = store.add_upload(db, person, "image", "m", path, sha, 1, "image/jpeg")
    return row


def test_everything_the_merged_person_owned_moves(db):
    keep = login(db, "wxB", "o-b", unionid="U1")
    dropped = login(db, "wxA", "o-a")  # before WeChat gave this identity its unionid
    visitor = login(db, "wxA", "o-visitor")
    account = store.create_account(db, "carol", "hash")
    store.bind_account(db, dropped, account)
    code = store.referral_code(db, dropped, "CODEDROPPED1")
    store.record_share_visit(db, dropped, visitor)
    store.record_share_visit(db, visitor, dropped)  # a visit the dropped person made
    store.create_order(db, "WX1", dropped, "wxA", "o-a", "coffee", "一杯咖啡", 1200)
    upload(db, keep, "same", "images/k.jpg")
    upload(db, dropped, "same", "images/d-dup.jpg")
    upload(db, dropped, "other", "images/d.jpg")

    assert login(db, "wxA", "o-a", unionid="U1") == keep

    def values(sql, **params):
        return [next(iter(r.values())) for r in db.query(sql, params)]

    assert set(values("SELECT person_id FROM wechat_users WHERE openid IN ('o-a', 'o-b')")) == {
        keep
    }
    assert store.get_order(db, "WX1", keep) is not None
    paths = values("SELECT path FROM uploads WHERE person_id = :p", p=keep)
    assert sorted(paths) == ["images/d.jpg", "images/k.jpg"]
    assert values("SELECT COUNT(*) FROM uploads WHERE person_id = :p", p=dropped) == [0]
    assert values("SELECT path FROM orphan_files") == ["images/d-dup.jpg"]
    assert store.share_visits(db, keep) == 1
    assert store.share_visits(db, visitor) == 1
    assert values("SELECT visitor FROM share_visits WHERE person_id = :p", p=visitor) == [
        store.visitor_key(keep)
    ]
    assert store.person_by_referral(db, code) == keep
    assert values("SELECT account_id FROM people WHERE id = :p", p=keep) == [account]


def test_both_codes_keep_counting_for_the_merged_person(db):
    keep = login(db, "wxB", "o-b", unionid="U1")
    dropped = login(db, "wxA", "o-a")
    kept_code = store.referral_code(db, keep, "CODEKEEP0001")
    dropped_code = store.referral_code(db, dropped, "CODEDROP0001")
    login(db, "wxA", "o-a", unionid="U1")
    assert store.person_by_referral(db, kept_code) == keep
    assert store.person_by_referral(db, dropped_code) == keep


def test_people_bound_to_different_accounts_are_kept_apart(db, caplog):
    keep = login(db, "wxB", "o-b", unionid="U1")
    dropped = login(db, "wxA", "o-a")
    store.bind_account(db, keep, store.create_account(db, "carol", "hash"))
    store.bind_account(db, dropped, store.create_account(db, "dave", "hash"))
    assert login(db, "wxA", "o-a", unionid="U1") == dropped
    bound = db.query("SELECT id FROM people WHERE account_id IS NOT NULL")
    assert {r["id"] for r in bound} == {keep, dropped}  # no binding dropped
    assert "kept apart" in caplog.text
