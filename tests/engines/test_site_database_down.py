"""The site while its PostgreSQL is down: clear 503s, /healthz says so, back by itself after."""

import pytest

from pgserver import start_server
from support import site_config
from wxsite import create_app, engines, wx


@pytest.fixture
def own_pg_server():
    """A PostgreSQL server of this test's own, free to be stopped and started."""
    server = start_server()
    yield server
    server.remove()


def test_a_database_outage_is_a_clear_503_and_healthz_says_so(own_pg_server, tmp_path, emu):
    url = own_pg_server.create_database("site")
    app = create_app(site_config(tmp_path, emu, WXSITE_DATABASE=url))
    client = app.test_client()
    try:
        assert client.get("/healthz").status_code == 200
        reads = []
        with app.app_context():
            store_ = wx.client().credentials.store
        real_read = store_.read
        store_.read = lambda *args: reads.append(args) or real_read(*args)

        own_pg_server.stop()
        page = client.get("/auth/login", headers={"Accept": "text/html"})
        assert page.status_code == 503 and "服务暂时不可用" in page.text
        assert "Traceback" not in page.text and "psycopg" not in page.text
        answer = client.get("/auth/login", headers={"Accept": "application/json"})
        assert answer.status_code == 503 and answer.json["error"] == "database_unavailable"
        health = client.get("/healthz")
        assert health.status_code == 503 and health.json["database"] == "error"
        assert health.json["status"] == "degraded"
        # Its credentials live in that database: not asked (each would wait out the pool).
        assert reads == [] and health.json["credentials"]["access_token"]["cached"] is False

        own_pg_server.start()
        for _ in range(100):  # the pool reconnects by itself
            if client.get("/healthz").status_code == 200:
                break
        assert client.get("/healthz").json["database"] == "ok"
        assert client.get("/auth/login").status_code == 302
    finally:
        engines.close_all()
