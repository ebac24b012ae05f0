"""The store: idempotent migrations that many processes can run at once."""

import multiprocessing

from support import ENGINE, database
from wxsite import store


def _migrate(path, barrier):
    barrier.wait()
    db = store.connect(path)
    store.migrate(db)
    db.close()


def test_migrations_are_idempotent(tmp_path):
    db = store.connect(database(tmp_path, "a"))
    store.migrate(db)
    store.migrate(db)
    names = [r["name"] for r in db.query("SELECT name FROM _migrations ORDER BY name")]
    assert names == [name for name, _ in store.MIGRATIONS]
    assert all(at for _, at in store.applied(db))
    if ENGINE == "sqlite":
        assert db.scalar("PRAGMA journal_mode") == "wal"


def test_concurrent_migrations_from_processes(tmp_path):
    path = database(tmp_path, "b")
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(6)
    procs = [ctx.Process(target=_migrate, args=(path, barrier)) for _ in range(6)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(30)
    assert [p.exitcode for p in procs] == [0] * 6
    db = store.connect(path)
    assert db.scalar("SELECT COUNT(*) FROM _migrations") == len(store.MIGRATIONS)


def test_accounts_and_case_insensitive_usernames(tmp_path):
    from wxsite import accounts

    db = store.connect(database(tmp_path, "c"))
    store.migrate(db)
    accounts.create(db, "Alice", "correct horse")
    assert accounts.authenticate(db, "alice", "correct horse")["username"] == "Alice"
    assert accounts.authenticate(db, "alice", "wrong password") is None
    assert accounts.authenticate(db, "nobody", "correct horse") is None
    import pytest

    with pytest.raises(accounts.AccountError):
        accounts.create(db, "ALICE", "another password")
    with pytest.raises(accounts.AccountError):
        accounts.create(db, "bob", "short")
