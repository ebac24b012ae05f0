"""The schema: migrations applied in order, once each, by whichever process starts first."""

import sqlite3
import time

from .db import transaction

#: Applied in order, once each, recorded in ``_migrations``. Append; never edit a shipped one.
MIGRATIONS = [
    (
        "0001_initial",
        """
        CREATE TABLE accounts (
            id INTEGER PRIMARY KEY,
            username TEXT NOT NULL UNIQUE COLLATE NOCASE,
            password_hash TEXT NOT NULL,
            display_name TEXT,
            created_at REAL NOT NULL
        );
        -- One person: one unionid when WeChat gives one; owns the binding and the uploads.
        CREATE TABLE people (
            id INTEGER PRIMARY KEY,
            unionid TEXT UNIQUE,
            account_id INTEGER UNIQUE REFERENCES accounts(id),
            referral_code TEXT UNIQUE,
            created_at REAL NOT NULL
        );
        CREATE TABLE wechat_users (
            id INTEGER PRIMARY KEY,
            appid TEXT NOT NULL,
            openid TEXT NOT NULL,
            person_id INTEGER NOT NULL REFERENCES people(id),
            unionid TEXT,
            scope TEXT,
            nickname TEXT,
            headimgurl TEXT,
            sex INTEGER,
            province TEXT,
            city TEXT,
            country TEXT,
            profile_at REAL,
            web_access_token TEXT,
            web_token_expires REAL,
            refresh_token TEXT,
            refresh_expires REAL,
            created_at REAL NOT NULL,
            last_login_at REAL,
            UNIQUE (appid, openid)
        );
        CREATE INDEX wechat_users_person ON wechat_users(person_id);
        CREATE TABLE uploads (
            id INTEGER PRIMARY KEY,
            person_id INTEGER NOT NULL REFERENCES people(id),
            kind TEXT NOT NULL,
            media_id TEXT,
            path TEXT NOT NULL,
            sha256 TEXT NOT NULL,
            size INTEGER NOT NULL,
            content_type TEXT NOT NULL,
            duration REAL,
            created_at REAL NOT NULL,
            UNIQUE (person_id, kind, sha256)
        );
        CREATE TABLE credentials (
            appid TEXT NOT NULL,
            kind TEXT NOT NULL,
            value TEXT,
            expires_at REAL NOT NULL DEFAULT 0,
            lease_owner TEXT,
            lease_until REAL,
            error_code INTEGER,
            error_until REAL NOT NULL DEFAULT 0,
            updated_at REAL,
            PRIMARY KEY (appid, kind)
        );
        """,
    ),
    (
        "0002_auth",
        """
        -- One row per authorization attempt: the state is single-use and bound to the
        -- browser session (session_key) that started it; the result survives so that a
        -- second delivery of the callback can finish the same login instead of failing.
        CREATE TABLE auth_states (
            state TEXT PRIMARY KEY,
            session_key TEXT NOT NULL,
            next TEXT NOT NULL,
            scope TEXT NOT NULL,
            created_at REAL NOT NULL,
            claimed_at REAL,
            wechat_user_id INTEGER REFERENCES wechat_users(id),
            failed_errcode INTEGER
        );
        CREATE INDEX auth_states_created ON auth_states(created_at);
        -- Server-side login sessions: the cookie carries only this random id, so logout
        -- (or an operator) can revoke a cookie that was copied.
        CREATE TABLE logins (
            id TEXT PRIMARY KEY,
            wechat_user_id INTEGER NOT NULL REFERENCES wechat_users(id),
            created_at REAL NOT NULL,
            revoked_at REAL
        );
        CREATE INDEX logins_user ON logins(wechat_user_id);
        CREATE TABLE login_failures (
            key TEXT PRIMARY KEY,
            failures INTEGER NOT NULL,
            window_start REAL NOT NULL
        );
        """,
    ),
    (
        "0003_media",
        """
        -- Voice notes keep WeChat's high-quality speex beside the AMR, and a transcoded
        -- copy browsers can play.
        ALTER TABLE uploads ADD COLUMN hq_path TEXT;
        ALTER TABLE uploads ADD COLUMN playable_path TEXT;
        CREATE TABLE share_visits (
            id INTEGER PRIMARY KEY,
            person_id INTEGER NOT NULL REFERENCES people(id),
            visitor TEXT NOT NULL,
            created_at REAL NOT NULL,
            UNIQUE (person_id, visitor)
        );
        """,
    ),
    (
        "0004_pay",
        """
        -- Amounts in fen. An order's state comes from WeChat (notification or query).
        CREATE TABLE orders (
            out_trade_no TEXT PRIMARY KEY,
            person_id INTEGER NOT NULL REFERENCES people(id),
            appid TEXT NOT NULL,
            openid TEXT NOT NULL,
            product TEXT NOT NULL,
            description TEXT NOT NULL,
            amount INTEGER NOT NULL CHECK (amount > 0),
            state TEXT NOT NULL,
            prepay_id TEXT,
            transaction_id TEXT,
            paid_at TEXT,
            created_at REAL NOT NULL
        );
        CREATE INDEX orders_person ON orders(person_id);
        CREATE TABLE refunds (
            out_refund_no TEXT PRIMARY KEY,
            out_trade_no TEXT NOT NULL REFERENCES orders(out_trade_no),
            amount INTEGER NOT NULL CHECK (amount > 0),
            status TEXT NOT NULL,
            funds_account TEXT,
            refund_id TEXT,
            created_at REAL NOT NULL,
            updated_at REAL
        );
        CREATE INDEX refunds_order ON refunds(out_trade_no);
        CREATE TABLE pay_notifications (
            id TEXT PRIMARY KEY,
            event_type TEXT NOT NULL,
            received_at REAL NOT NULL
        );
        """,
    ),
    (
        "0005_auth_authlib",
        """
        -- Authorization attempts become Authlib's server-side state cache: key and value are
        -- Authlib's (the value is its JSON: redirect_uri, next, scope), the browser holds
        -- the matching marker in its session. claimed_at and wechat_user_id let a second
        -- delivery of the callback finish the same login instead of failing. Attempts in
        -- flight during the upgrade are dropped (they live ten minutes).
        DROP TABLE auth_states;
        CREATE TABLE auth_states (
            key TEXT PRIMARY KEY,
            value TEXT NOT NULL,
            expires_at REAL NOT NULL,
            claimed_at REAL,
            wechat_user_id INTEGER REFERENCES wechat_users(id)
        );
        CREATE INDEX auth_states_expires ON auth_states(expires_at);
        """,
    ),
    (
        "0006_reliability",
        """
        -- A merged person keeps its row so that links shared with its referral code still
        -- count for the person it became.
        ALTER TABLE people ADD COLUMN merged_into INTEGER REFERENCES people(id);
        -- When the site last asked WeChat Pay about an unpaid order (polls share one query).
        ALTER TABLE orders ADD COLUMN queried_at REAL;
        -- Files whose rows are gone (deleted, merged away), written in the same transaction
        -- as the deletion; the sweeper removes the file, then the entry.
        CREATE TABLE orphan_files (
            path TEXT PRIMARY KEY,
            created_at REAL NOT NULL
        );
        CREATE INDEX logins_created ON logins(created_at);
        CREATE INDEX pay_notifications_received ON pay_notifications(received_at);
        CREATE INDEX login_failures_window ON login_failures(window_start);
        """,
    ),
]


def migrate(db, attempts=50):
    """Apply pending migrations; safe when several workers start at once."""
    for attempt in range(attempts):
        try:
            return _migrate(db)
        except sqlite3.OperationalError as exc:
            # Switching to WAL, or reading while another process does, can answer "locked"
            # without waiting for the busy timeout; a brand-new database is worth a retry.
            if "locked" not in str(exc) or attempt == attempts - 1:
                raise
            time.sleep(0.1)


def _migrate(db):
    if db.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
        db.execute("PRAGMA journal_mode = WAL")
    with transaction(db):
        db.execute(
            "CREATE TABLE IF NOT EXISTS _migrations (name TEXT PRIMARY KEY, applied_at REAL)"
        )
        done = {row[0] for row in db.execute("SELECT name FROM _migrations")}
        for name, sql in MIGRATIONS:
            if name in done:
                continue
            for statement in _statements(sql):
                db.execute(statement)
            db.execute("INSERT INTO _migrations VALUES (?, ?)", [name, time.time()])


def _statements(sql):
    # executescript() would COMMIT our transaction first; split instead (no ';' in bodies).
    code = "\n".join(line for line in sql.splitlines() if not line.strip().startswith("--"))
    return [s.strip() for s in code.split(";") if s.strip()]
