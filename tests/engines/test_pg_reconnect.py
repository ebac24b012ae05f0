"""PostgreSQL connections that died while pooled (a server restart): no ping per lend, no error.

The engine lends a pooled connection without a round trip. A connection whose server went
away has its goodbye (or the end of the stream) waiting on its socket, which the lend looks
at; a death that look misses fails the first statement, which then runs once more on a new
connection, but only when it cannot have written anything (BEGIN, SELECT, SHOW).
"""

import pytest

from pgserver import start_server
from support import LiveServer, csrf_token, site_config, wechat_login
from wxsite import create_app, engines
from wxsite.engines import Unavailable, open_engine


@pytest.fixture
def own_pg_server():
    """A PostgreSQL server of this test's own, free to be stopped and started."""
    server = start_server()
    yield server
    server.remove()


@pytest.fixture(params=["look", "first statement"])
def catch(request, monkeypatch):
    """Which of the two safeguards has to catch the dead connection."""
    if request.param == "first statement":
        # The lend-time look sees nothing (as when the restart happens just after it).
        monkeypatch.setattr(engines, "_unasked_input", lambda raw: False)
    return request.param


def counted_statements(monkeypatch):
    import psycopg

    sent = []
    real = psycopg.Cursor.execute

    def execute(self, query, *args, **kwargs):
        sent.append(query)
        return real(self, query, *args, **kwargs)

    monkeypatch.setattr(psycopg.Cursor, "execute", execute)
    return sent


def hold_every_connection(engine):
    """Open the pool's every connection (so a restart leaves all of them dead)."""
    held = [engine.connect() for _ in range(engine.pool_size)]
    for conn in held:
        assert conn.scalar("SELECT 1") == 1
    for conn in held:
        conn.close()


def restart_under(engine, server):
    """Restart ``server`` while the pool of ``engine`` holds every connection idle."""
    hold_every_connection(engine)
    server.stop()
    server.start()


@pytest.fixture
def engine(own_pg_server):
    """An engine on the test's own server, with a table ``t``."""
    engine = open_engine(own_pg_server.create_database("app"), busy_timeout=2)
    engine.execute("CREATE TABLE t (k TEXT PRIMARY KEY)")
    yield engine
    engine.close()


def test_a_lend_sends_nothing_but_the_statements(pg_url, monkeypatch):
    with open_engine(pg_url) as engine:
        engine.scalar("SELECT 1")  # the pool's first connection is open
        sent = counted_statements(monkeypatch)
        with engine.connection() as conn:
            assert conn.scalar("SELECT 2") == 2
        with engine.transaction() as conn:
            conn.scalar("SELECT 3")
        assert [str(q) for q in sent] == ["SELECT 2", "BEGIN", "SELECT 3", "COMMIT"]


def test_a_restart_between_statements_costs_no_error(engine, own_pg_server, catch):
    restart_under(engine, own_pg_server)
    # Every pooled connection is dead; reads, and transactions, still answer.
    for n in range(engine.pool_size + 1):
        assert engine.scalar("SELECT :n AS n", {"n": n}) == n
    restart_under(engine, own_pg_server)
    for n in range(engine.pool_size + 1):
        with engine.transaction() as conn:
            conn.execute("INSERT INTO t (k) VALUES (:k)", {"k": f"k{n}"})
    assert engine.scalar("SELECT COUNT(*) FROM t") == engine.pool_size + 1


def test_a_write_on_a_dead_connection_is_not_sent_twice(engine, own_pg_server, monkeypatch):
    restart_under(engine, own_pg_server)
    monkeypatch.setattr(engines, "_unasked_input", lambda raw: False)
    # An autocommit write as the first statement may have reached a server (it cannot
    # be told apart from one that died mid-statement): refused, not run again.
    with pytest.raises(Unavailable):
        engine.execute("INSERT INTO t (k) VALUES ('once')")
    monkeypatch.undo()
    assert engine.scalar("SELECT COUNT(*) FROM t") == 0
    engine.execute("INSERT INTO t (k) VALUES ('once')")
    assert engine.scalar("SELECT COUNT(*) FROM t") == 1


def test_a_failure_after_the_first_statement_is_not_hidden(engine, own_pg_server):
    with engine.connection() as conn:
        assert conn.scalar("SELECT 1") == 1
        own_pg_server.stop()
        own_pg_server.start()
        with pytest.raises(Unavailable):
            conn.scalar("SELECT 2")
    assert engine.scalar("SELECT 3") == 3


def test_a_server_restart_between_two_requests_costs_no_error_page(
    own_pg_server, tmp_path, emu, phone, catch
):
    config = site_config(tmp_path, emu)
    config["WXSITE_DATABASE"] = own_pg_server.create_database("site")
    app = create_app(config)
    live = LiveServer(app)
    try:
        wechat_login(phone, live)
        assert phone.get(live.url("/share")).status_code == 200
        restart_under(engines_of(app), own_pg_server)
        for _ in range(6):
            for path in ("/share", "/upload", "/"):
                response = phone.get(live.url(path), allow_redirects=False)
                assert response.status_code == 200, (path, response.status_code)
        # Still the same login: a restart logs nobody out, and nobody in.
        token = csrf_token(phone.get(live.url("/share")).text)
        phone.post(live.url("/auth/logout"), data={"csrf_token": token})
        assert phone.get(live.url("/share"), allow_redirects=False).status_code == 302
    finally:
        live.shutdown()


def engines_of(app):
    from wxsite import store

    return store.engine(app)
