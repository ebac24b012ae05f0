"""The site as gunicorn serves it, plus a statement counter for ``make bench``.

A request that sends ``X-Bench-Count: 1`` gets ``X-Bench-Statements``: how many SQL
statements its thread sent to the database, PRAGMAs, pings and transaction control
included, on either engine. Other requests pay one thread-local lookup per statement.
"""

import sqlite3
import threading

import psycopg

from wsgi import app
from wxsite import store

_counter = threading.local()


def _count(*_args):
    if getattr(_counter, "on", False):
        _counter.n += 1


engine = store.engine(app)
if engine.name == "sqlite":
    _connect = sqlite3.connect

    def connect(*args, **kwargs):
        # Traced from the start, so a new connection's PRAGMAs count too.
        conn = _connect(*args, **kwargs)
        conn.set_trace_callback(_count)
        return conn

    sqlite3.connect = connect
else:
    # Every psycopg statement goes through Cursor.execute: Connection.execute makes a
    # cursor and calls it (counting both counted the pool's liveness ping twice).
    _execute = psycopg.Cursor.execute

    def execute(self, *args, **kwargs):
        _count()
        return _execute(self, *args, **kwargs)

    psycopg.Cursor.execute = execute

    _executemany = psycopg.Cursor.executemany

    def executemany(self, query, params_seq, **kwargs):
        _count()
        return _executemany(self, query, params_seq, **kwargs)

    psycopg.Cursor.executemany = executemany


class CountStatements:
    """WSGI middleware answering ``X-Bench-Count`` requests with their statement count."""

    def __init__(self, wsgi_app):
        self.wsgi_app = wsgi_app

    def __call__(self, environ, start_response):
        if environ.get("HTTP_X_BENCH_COUNT") != "1":
            return self.wsgi_app(environ, start_response)
        _counter.on, _counter.n = True, 0

        def counted(status, headers, exc_info=None):
            # Teardown (connection release) runs when the body is closed, after this.
            return start_response(status, headers + [("X-Bench-Statements", str(_counter.n))])

        try:
            return list(self.wsgi_app(environ, counted))
        finally:
            _counter.on = False


app.wsgi_app = CountStatements(app.wsgi_app)
