"""Rules SQLite's single writer used to enforce, under 20 parallel writers (issue 12 item 3).

Run on whichever engine the suite runs on; ``make test`` runs them on SQLite and on
PostgreSQL, where writers really run side by side and only row locks keep the rules.
"""

import threading

import pytest

from support import database
from wxsite import store
from wxsite.wechat.oauth import WebToken

PARALLEL = 20


@pytest.fixture
def engine(tmp_path):
    # One connection per writer: they all hold theirs at the barrier at once.
    engine = store.open_engine(database(tmp_path, "parallel"), pool_size=PARALLEL + 2)
    with engine.connection() as db:
        store.migrate(db)
    yield engine
    engine.close()


def at_once(engine, work):
    """Run ``work(db, i)`` in PARALLEL threads, each with its own connection; return results."""
    barrier = threading.Barrier(PARALLEL)
    results = [None] * PARALLEL

    def run(i):
        with engine.connection() as db:
            barrier.wait()
            try:
                results[i] = ("ok", work(db, i))
            except Exception as exc:  # noqa: BLE001 - the test inspects what each one got
                results[i] = ("error", exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(PARALLEL)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def paid_order(db, amount=1000):
    person = db.scalar("INSERT INTO people (created_at) VALUES (0) RETURNING id")
    store.create_order(db, "WXPARALLEL", person, "wx", "o", "tea", "tea", amount)
    store.mark_paid(db, "WXPARALLEL", "tx", "2026-12-01")
    return person


def test_parallel_refunds_never_exceed_what_was_paid(engine):
    with engine.connection() as db:
        paid_order(db, amount=1000)
    results = at_once(engine, lambda db, i: store.start_refund(db, f"RF{i}", "WXPARALLEL", 300))
    taken = [r for r in results if r[0] == "ok"]
    refused = [r for r in results if r[0] == "error"]
    assert len(taken) == 3  # 3 × 300 ≤ 1000 < 4 × 300
    assert all(isinstance(e, store.RefundRefused) for _, e in refused), refused
    with engine.connection() as db:
        assert store.refundable(db, "WXPARALLEL") == 100


def test_parallel_binds_of_one_account_bind_it_once(engine):
    with engine.connection() as db:
        account = store.create_account(db, "alice", "hash")
        people = [
            db.scalar("INSERT INTO people (created_at) VALUES (0) RETURNING id")
            for _ in range(PARALLEL)
        ]
    results = at_once(engine, lambda db, i: store.bind_account(db, people[i], account))
    assert [r[0] for r in results].count("ok") == 1
    assert all(isinstance(e, store.BindingConflict) for kind, e in results if kind == "error")
    with engine.connection() as db:
        assert db.scalar("SELECT COUNT(*) FROM people WHERE account_id = :a", {"a": account}) == 1


@pytest.mark.parametrize("same_openid", [True, False], ids=["one-identity", "many-appids"])
def test_parallel_first_logins_of_one_unionid_make_one_person(engine, same_openid):
    def login(db, i):
        appid = "wxA" if same_openid else f"wx{i:02d}"
        token = WebToken("o-same" if same_openid else f"o-{i}", "t", "r", 7200, "snsapi_base", "U1")
        return store.save_wechat_login(db, appid, token)

    results = at_once(engine, login)
    assert [kind for kind, _ in results] == ["ok"] * PARALLEL, results
    with engine.connection() as db:
        assert db.scalar("SELECT COUNT(*) FROM people") == 1
        identities = db.scalar("SELECT COUNT(*) FROM wechat_users")
        assert identities == (1 if same_openid else PARALLEL)


def test_parallel_uploads_of_one_file_store_one_row(engine):
    with engine.connection() as db:
        person = db.scalar("INSERT INTO people (created_at) VALUES (0) RETURNING id")
    results = at_once(
        engine,
        lambda db, i: store.add_upload(
            db, person, "image", "m", f"images/{i}.jpg", "same-sha", 1, "image/jpeg"
        ),
    )
    created = [r[1][1] for r in results if r[0] == "ok"]
    assert len(created) == PARALLEL and created.count(True) == 1
    assert len({r[1][0]["id"] for r in results}) == 1  # everyone got the one row


def test_parallel_attempts_never_exceed_the_limit(engine):
    results = at_once(engine, lambda db, i: store.take_attempt(db, {"account:alice": 5}, 900))
    assert [r[1] for r in results].count([]) == 5
