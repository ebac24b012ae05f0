"""All of wxsite's SQL: schema, migrations, queries. Nothing else writes SQL.

Functions take the ``sqlite_utils.Database`` first, so they run without Flask (tests use a
temporary file). Writers use ``transaction(db)`` (BEGIN IMMEDIATE: take the write lock up
front instead of failing halfway on an upgrade) and never keep it across an HTTP call.
Only the glue at the bottom touches Flask.
"""

import os
import sqlite3
import time
from contextlib import contextmanager

import sqlite_utils

from .wechat.credentials import Credential

#: How long a connection waits for another writer before "database is locked".
BUSY_TIMEOUT = 5.0


def connect(path, busy_timeout=BUSY_TIMEOUT):
    """Open the database at ``path`` in autocommit mode with WAL-friendly pragmas."""
    conn = sqlite3.connect(
        path, timeout=busy_timeout, isolation_level=None, check_same_thread=False
    )
    conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute("PRAGMA synchronous = NORMAL")
    return sqlite_utils.Database(conn, execute_plugins=False)


@contextmanager
def transaction(db):
    """Run the block as one write transaction holding the write lock from the start."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield db
    except BaseException:
        db.conn.rollback()
        raise
    db.execute("COMMIT")


# -- migrations ---------------------------------------------------------------------------

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


# -- accounts -------------------------------------------------------------------------------


def create_account(db, username, password_hash, display_name=None):
    """Insert a site account; return its id. Raises ``sqlite3.IntegrityError`` if taken."""
    with transaction(db):
        cursor = db.execute(
            "INSERT INTO accounts (username, password_hash, display_name, created_at) "
            "VALUES (?, ?, ?, ?)",
            [username, password_hash, display_name, time.time()],
        )
    return cursor.lastrowid


def get_account(db, account_id):
    """Return the account row as a dict, or None."""
    return _one(db, "SELECT * FROM accounts WHERE id = ?", [account_id])


def find_account(db, username):
    """Return the account with this username (case-insensitive), or None."""
    return _one(db, "SELECT * FROM accounts WHERE username = ?", [username])


def list_accounts(db):
    """Return every account with the WeChat identities bound to it."""
    return list(
        db.query(
            "SELECT a.id, a.username, a.display_name, a.created_at, "
            "COUNT(w.id) AS wechat_identities FROM accounts a "
            "LEFT JOIN people p ON p.account_id = a.id "
            "LEFT JOIN wechat_users w ON w.person_id = p.id "
            "GROUP BY a.id ORDER BY a.id"
        )
    )


def ping(db):
    """Return True if the database answers a trivial query."""
    return db.execute("SELECT 1").fetchone()[0] == 1


def _one(db, sql, params=()):
    rows = list(db.query(sql, params))
    return rows[0] if rows else None


# -- authorization state ----------------------------------------------------------------

#: Finished or abandoned attempts are kept this long past their expiry, then pruned.
AUTH_STATE_KEEP = 86400


def put_auth_state(db, key, value, expires_at, now=None):
    """Record a new authorization attempt (Authlib's state data, JSON)."""
    with transaction(db):
        db.execute(
            "INSERT OR REPLACE INTO auth_states (key, value, expires_at) VALUES (?, ?, ?)",
            [key, value, expires_at],
        )
        # Prune old attempts on the way (an index keeps this cheap).
        db.execute(
            "DELETE FROM auth_states WHERE expires_at < ?",
            [(now or time.time()) - AUTH_STATE_KEEP],
        )


def get_auth_state(db, key):
    """Return the authorization attempt stored under ``key``, or None."""
    return _one(db, "SELECT * FROM auth_states WHERE key = ?", [key])


def delete_auth_state(db, key):
    """Forget an authorization attempt."""
    with transaction(db):
        db.execute("DELETE FROM auth_states WHERE key = ?", [key])


def claim_auth_state(db, key, now, stale_before):
    """Mark the attempt as being finished; return True for the one caller that wins.

    A claim older than ``stale_before`` (its request died mid-exchange) may be taken over.
    """
    with transaction(db):
        cursor = db.execute(
            "UPDATE auth_states SET claimed_at = ? WHERE key = ? AND wechat_user_id IS NULL "
            "AND (claimed_at IS NULL OR claimed_at < ?)",
            [now, key, stale_before],
        )
    return cursor.rowcount == 1


def finish_auth_state(db, key, wechat_user_id):
    """Record who the attempt logged in."""
    with transaction(db):
        db.execute("UPDATE auth_states SET wechat_user_id = ? WHERE key = ?", [wechat_user_id, key])


def release_auth_state(db, key):
    """Give the attempt back after a failed exchange, so a second delivery may try."""
    with transaction(db):
        db.execute(
            "UPDATE auth_states SET claimed_at = NULL WHERE key = ? AND wechat_user_id IS NULL",
            [key],
        )


# -- people and WeChat identities ------------------------------------------------------------

PROFILE_FIELDS = ("nickname", "headimgurl", "sex", "province", "city", "country")


def save_wechat_login(db, appid, token, now=None):
    """Create or update the WeChat identity of a code exchange; return its row id.

    One person per unionid: an identity arriving with a unionid joins the person who
    already has it (from the other appid), moving its uploads along.
    """
    now = now or time.time()
    with transaction(db):
        row = _one(
            db, "SELECT * FROM wechat_users WHERE appid = ? AND openid = ?", [appid, token.openid]
        )
        person_id = _person_for(db, token.unionid, row, now)
        values = {
            "person_id": person_id,
            "unionid": token.unionid or (row or {}).get("unionid"),
            "scope": token.scope,
            "web_access_token": token.access_token,
            "web_token_expires": now + token.expires_in,
            "refresh_token": token.refresh_token,
            "refresh_expires": now + 30 * 86400,
            "last_login_at": now,
        }
        if row:
            sets = ", ".join(f"{k} = ?" for k in values)
            db.execute(
                f"UPDATE wechat_users SET {sets} WHERE id = ?", [*values.values(), row["id"]]
            )
            return row["id"]
        values.update(appid=appid, openid=token.openid, created_at=now)
        cols = ", ".join(values)
        marks = ", ".join("?" for _ in values)
        return db.execute(
            f"INSERT INTO wechat_users ({cols}) VALUES ({marks})", list(values.values())
        ).lastrowid


def _person_for(db, unionid, row, now):
    current = row["person_id"] if row else None
    if unionid:
        owner = _one(db, "SELECT * FROM people WHERE unionid = ?", [unionid])
        if owner and current and owner["id"] != current:
            _merge_people(db, keep=owner, drop_id=current)
            return owner["id"]
        if owner:
            return owner["id"]
        if current:
            db.execute("UPDATE people SET unionid = ? WHERE id = ?", [unionid, current])
            return current
    if current:
        return current
    return db.execute(
        "INSERT INTO people (unionid, created_at) VALUES (?, ?)", [unionid, now]
    ).lastrowid


def _merge_people(db, keep, drop_id):
    dropped = _one(db, "SELECT * FROM people WHERE id = ?", [drop_id])
    db.execute("UPDATE wechat_users SET person_id = ? WHERE person_id = ?", [keep["id"], drop_id])
    db.execute(
        "UPDATE OR IGNORE uploads SET person_id = ? WHERE person_id = ?", [keep["id"], drop_id]
    )
    db.execute("DELETE FROM uploads WHERE person_id = ?", [drop_id])  # duplicates by sha256
    if dropped and dropped["account_id"] and not keep["account_id"]:
        db.execute("UPDATE people SET account_id = NULL WHERE id = ?", [drop_id])
        db.execute(
            "UPDATE people SET account_id = ? WHERE id = ?", [dropped["account_id"], keep["id"]]
        )
    db.execute("UPDATE people SET account_id = NULL WHERE id = ?", [drop_id])


def save_profile(db, wechat_user_id, info, now=None):
    """Store the consented profile from ``sns/userinfo``."""
    values = [info.get(field) for field in PROFILE_FIELDS]
    with transaction(db):
        db.execute(
            "UPDATE wechat_users SET nickname = ?, headimgurl = ?, sex = ?, province = ?, "
            "city = ?, country = ?, profile_at = ? WHERE id = ?",
            [*values, now or time.time(), wechat_user_id],
        )


def save_web_token(db, wechat_user_id, token, now=None):
    """Store a refreshed web access_token."""
    now = now or time.time()
    with transaction(db):
        db.execute(
            "UPDATE wechat_users SET web_access_token = ?, web_token_expires = ?, "
            "refresh_token = COALESCE(NULLIF(?, ''), refresh_token), scope = ? WHERE id = ?",
            [
                token.access_token,
                now + token.expires_in,
                token.refresh_token,
                token.scope,
                wechat_user_id,
            ],
        )


def get_wechat_user(db, wechat_user_id):
    """Return the identity with its person's binding and account name, or None."""
    return _one(
        db,
        "SELECT w.*, p.account_id, p.referral_code, a.username AS account_username, "
        "a.display_name AS account_display_name FROM wechat_users w "
        "JOIN people p ON p.id = w.person_id LEFT JOIN accounts a ON a.id = p.account_id "
        "WHERE w.id = ?",
        [wechat_user_id],
    )


# -- login sessions -------------------------------------------------------------------------


def create_login(db, login_id, wechat_user_id, now=None):
    """Record a login session (the cookie carries only ``login_id``)."""
    with transaction(db):
        db.execute(
            "INSERT INTO logins (id, wechat_user_id, created_at) VALUES (?, ?, ?)",
            [login_id, wechat_user_id, now or time.time()],
        )


def get_login(db, login_id, max_age, now=None):
    """Return the live login's identity row, or None if revoked, expired or unknown."""
    login = _one(
        db,
        "SELECT * FROM logins WHERE id = ? AND revoked_at IS NULL AND created_at > ?",
        [login_id, (now or time.time()) - max_age],
    )
    return get_wechat_user(db, login["wechat_user_id"]) if login else None


def revoke_login(db, login_id, now=None):
    """End a login session for good."""
    with transaction(db):
        db.execute(
            "UPDATE logins SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
            [now or time.time(), login_id],
        )


# -- binding and throttling ---------------------------------------------------------------------


class BindingConflict(Exception):
    """The account or the person is already bound elsewhere."""


def bind_account(db, person_id, account_id):
    """Bind a person to an account; never silently rebinds either side."""
    with transaction(db):
        person = _one(db, "SELECT account_id FROM people WHERE id = ?", [person_id])
        if person and person["account_id"] and person["account_id"] != account_id:
            raise BindingConflict("person")
        holder = _one(db, "SELECT id FROM people WHERE account_id = ?", [account_id])
        if holder and holder["id"] != person_id:
            raise BindingConflict("account")
        db.execute("UPDATE people SET account_id = ? WHERE id = ?", [account_id, person_id])


def unbind_account(db, person_id):
    """Remove a person's binding."""
    with transaction(db):
        db.execute("UPDATE people SET account_id = NULL WHERE id = ?", [person_id])


def failures(db, key, window, now=None):
    """Return how many failures ``key`` has in the current window."""
    row = _one(db, "SELECT * FROM login_failures WHERE key = ?", [key])
    if not row or row["window_start"] < (now or time.time()) - window:
        return 0
    return row["failures"]


def record_failure(db, key, window, now=None):
    """Count one failure for ``key`` (a new window starts when the old one is over)."""
    now = now or time.time()
    with transaction(db):
        db.execute(
            "INSERT INTO login_failures (key, failures, window_start) VALUES (?, 1, ?) "
            "ON CONFLICT(key) DO UPDATE SET "
            "failures = CASE WHEN window_start < ? THEN 1 ELSE failures + 1 END, "
            "window_start = CASE WHEN window_start < ? THEN ? ELSE window_start END",
            [key, now, now - window, now - window, now],
        )


def clear_failures(db, key):
    """Forget the failures of ``key`` after a success."""
    with transaction(db):
        db.execute("DELETE FROM login_failures WHERE key = ?", [key])


# -- sharing ------------------------------------------------------------------------------


def referral_code(db, person_id, new_code):
    """Return the person's referral code, storing ``new_code`` the first time."""
    with transaction(db):
        db.execute(
            "UPDATE people SET referral_code = ? WHERE id = ? AND referral_code IS NULL",
            [new_code, person_id],
        )
        return db.execute("SELECT referral_code FROM people WHERE id = ?", [person_id]).fetchone()[
            0
        ]


def person_by_referral(db, code):
    """Return the id of the person who shares with ``code``, or None."""
    row = db.execute("SELECT id FROM people WHERE referral_code = ?", [code]).fetchone()
    return row[0] if row else None


def record_share_visit(db, person_id, visitor, now=None):
    """Count one visit through a person's shared link (once per visitor)."""
    with transaction(db):
        db.execute(
            "INSERT OR IGNORE INTO share_visits (person_id, visitor, created_at) VALUES (?, ?, ?)",
            [person_id, visitor, now or time.time()],
        )


def share_visits(db, person_id):
    """Return how many visitors arrived through the person's shared links."""
    return db.execute(
        "SELECT COUNT(*) FROM share_visits WHERE person_id = ?", [person_id]
    ).fetchone()[0]


# -- uploads ------------------------------------------------------------------------------


def add_upload(db, person_id, kind, media_id, path, sha256, size, content_type, **extra):
    """Insert an upload; return ``(row, created)`` — an existing row if it is a duplicate."""
    values = dict(
        person_id=person_id,
        kind=kind,
        media_id=media_id,
        path=path,
        sha256=sha256,
        size=size,
        content_type=content_type,
        created_at=time.time(),
        **extra,
    )
    cols = ", ".join(values)
    marks = ", ".join("?" for _ in values)
    with transaction(db):
        cursor = db.execute(
            f"INSERT OR IGNORE INTO uploads ({cols}) VALUES ({marks})", list(values.values())
        )
        created = cursor.rowcount == 1
        row = _one(
            db,
            "SELECT * FROM uploads WHERE person_id = ? AND kind = ? AND sha256 = ?",
            [person_id, kind, sha256],
        )
    return row, created


def find_upload(db, person_id, kind, sha256):
    """Return the person's upload with this content, or None."""
    return _one(
        db,
        "SELECT * FROM uploads WHERE person_id = ? AND kind = ? AND sha256 = ?",
        [person_id, kind, sha256],
    )


def get_upload(db, upload_id, person_id):
    """Return the upload if it belongs to ``person_id``, else None."""
    return _one(db, "SELECT * FROM uploads WHERE id = ? AND person_id = ?", [upload_id, person_id])


def list_uploads(db, person_id, kind):
    """Return the person's uploads of ``kind``, newest first."""
    return list(
        db.query(
            "SELECT * FROM uploads WHERE person_id = ? AND kind = ? ORDER BY id DESC",
            [person_id, kind],
        )
    )


def delete_upload(db, upload_id, person_id):
    """Delete the person's upload; return the deleted row (to remove its files) or None."""
    with transaction(db):
        row = get_upload(db, upload_id, person_id)
        if row:
            db.execute("DELETE FROM uploads WHERE id = ?", [upload_id])
    return row


# -- WeChat Pay ----------------------------------------------------------------------------

#: Refund states that hold (or may still hold) money: they count against the order.
LIVE_REFUNDS = ("PENDING", "PROCESSING", "SUCCESS")


def create_order(db, out_trade_no, person_id, appid, openid, product, description, amount):
    """Record a new, unpaid order (before asking WeChat, so its notification finds it)."""
    with transaction(db):
        db.execute(
            "INSERT INTO orders (out_trade_no, person_id, appid, openid, product, description, "
            "amount, state, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, 'NOTPAY', ?)",
            [out_trade_no, person_id, appid, openid, product, description, amount, time.time()],
        )


def set_order_prepay(db, out_trade_no, prepay_id):
    """Store the prepay_id WeChat gave the order."""
    with transaction(db):
        db.execute(
            "UPDATE orders SET prepay_id = ? WHERE out_trade_no = ?", [prepay_id, out_trade_no]
        )


def close_order(db, out_trade_no):
    """Mark an order that WeChat refused to create."""
    with transaction(db):
        db.execute(
            "UPDATE orders SET state = 'CLOSED' WHERE out_trade_no = ? AND state = 'NOTPAY'",
            [out_trade_no],
        )


def get_order(db, out_trade_no, person_id=None):
    """Return the order (only if it is ``person_id``'s, when given), or None."""
    order = _one(db, "SELECT * FROM orders WHERE out_trade_no = ?", [out_trade_no])
    if order is None or (person_id is not None and order["person_id"] != person_id):
        return None
    return order


def list_orders(db, person_id):
    """Return the person's orders, newest first, each with its refunds."""
    orders = list(
        db.query("SELECT * FROM orders WHERE person_id = ? ORDER BY created_at DESC", [person_id])
    )
    for order in orders:
        order["refunds"] = list(
            db.query(
                "SELECT * FROM refunds WHERE out_trade_no = ? ORDER BY created_at",
                [order["out_trade_no"]],
            )
        )
    return orders


def list_paid_orders(db, limit=100):
    """Return the latest paid (or refunded) orders of everyone, with what is refundable."""
    rows = list(
        db.query(
            "SELECT * FROM orders WHERE state IN ('SUCCESS', 'REFUND') ORDER BY created_at DESC LIMIT ?",
            [limit],
        )
    )
    for row in rows:
        row["refundable"] = refundable(db, row["out_trade_no"])
    return rows


def mark_paid(db, out_trade_no, transaction_id, paid_at):
    """NOTPAY → SUCCESS; return True if this call changed it (repeats change nothing)."""
    with transaction(db):
        cursor = db.execute(
            "UPDATE orders SET state = 'SUCCESS', transaction_id = ?, paid_at = ? "
            "WHERE out_trade_no = ? AND state = 'NOTPAY'",
            [transaction_id, paid_at, out_trade_no],
        )
    return cursor.rowcount == 1


def seen_notification(db, notification_id, event_type):
    """Record a notification id; return True if it had been processed before."""
    with transaction(db):
        cursor = db.execute(
            "INSERT OR IGNORE INTO pay_notifications (id, event_type, received_at) VALUES (?, ?, ?)",
            [notification_id, event_type, time.time()],
        )
    return cursor.rowcount == 0


def start_refund(db, out_refund_no, out_trade_no, amount):
    """Reserve a refund of ``amount``; return (refund row, created).

    The same ``out_refund_no`` again returns the existing refund. Refuses (ValueError)
    when the order's live refunds plus this one would exceed what was paid.
    """
    with transaction(db):
        existing = _one(db, "SELECT * FROM refunds WHERE out_refund_no = ?", [out_refund_no])
        if existing:
            if existing["out_trade_no"] != out_trade_no or existing["amount"] != amount:
                raise ValueError("out_refund_no already used for another refund")
            return existing, False
        order = _one(db, "SELECT amount, state FROM orders WHERE out_trade_no = ?", [out_trade_no])
        if order is None or order["state"] not in ("SUCCESS", "REFUND"):
            raise ValueError("order not paid")
        marks = ", ".join("?" for _ in LIVE_REFUNDS)
        refunded = db.execute(
            f"SELECT COALESCE(SUM(amount), 0) FROM refunds WHERE out_trade_no = ? AND status IN ({marks})",
            [out_trade_no, *LIVE_REFUNDS],
        ).fetchone()[0]
        if amount <= 0 or refunded + amount > order["amount"]:
            raise ValueError("more than the order has left")
        db.execute(
            "INSERT INTO refunds (out_refund_no, out_trade_no, amount, status, created_at) "
            "VALUES (?, ?, ?, 'PENDING', ?)",
            [out_refund_no, out_trade_no, amount, time.time()],
        )
    return _one(db, "SELECT * FROM refunds WHERE out_refund_no = ?", [out_refund_no]), True


def get_refund(db, out_refund_no):
    """Return the refund row, or None."""
    return _one(db, "SELECT * FROM refunds WHERE out_refund_no = ?", [out_refund_no])


def refundable(db, out_trade_no):
    """Return how many fen of the order are not yet (being) refunded."""
    marks = ", ".join("?" for _ in LIVE_REFUNDS)
    row = db.execute(
        f"SELECT o.amount - COALESCE((SELECT SUM(amount) FROM refunds r WHERE r.out_trade_no = o.out_trade_no "
        f"AND r.status IN ({marks})), 0) FROM orders o WHERE o.out_trade_no = ?",
        [*LIVE_REFUNDS, out_trade_no],
    ).fetchone()
    return row[0] if row else 0


def update_refund(db, out_refund_no, status, refund_id=None, funds_account=None):
    """Record WeChat's word on a refund; a SUCCESS is never taken back by a later answer."""
    with transaction(db):
        db.execute(
            "UPDATE refunds SET status = CASE WHEN status = 'SUCCESS' THEN status ELSE ? END, "
            "refund_id = COALESCE(?, refund_id), funds_account = COALESCE(?, funds_account), "
            "updated_at = ? WHERE out_refund_no = ?",
            [status, refund_id, funds_account, time.time(), out_refund_no],
        )
        if status == "SUCCESS":
            db.execute(
                "UPDATE orders SET state = 'REFUND' WHERE out_trade_no = "
                "(SELECT out_trade_no FROM refunds WHERE out_refund_no = ?)",
                [out_refund_no],
            )


# -- credentials (the single-flight store behind wechat.credentials) ----------------------


class CredentialStore:
    """SQLite-backed shared store for global credentials and their fetch lease.

    Opens a short connection per operation: it is used from any thread of any worker,
    outside request contexts, and must never hold a lock across WeChat's HTTP call.
    ``lease_owner`` stays on the row after ``lease_until`` passes and only changes when
    another holder acquires: that is how a holder whose lease expired learns that it may
    no longer save. The re-check window of a kind lives on a row of its own
    (``<kind>:recheck``, its ``expires_at`` is the window's end, it never has a value), so
    that no migration is needed and ``statuses`` never shows it.
    """

    def __init__(self, path, busy_timeout=BUSY_TIMEOUT):
        self.path = path
        self.busy_timeout = busy_timeout

    @contextmanager
    def _db(self):
        db = connect(self.path, self.busy_timeout)
        try:
            yield db
        finally:
            db.close()

    def read(self, appid, kind):
        """Return the stored ``Credential`` or None."""
        with self._db() as db:
            row = db.execute(
                "SELECT value, expires_at, error_code, error_until FROM credentials "
                "WHERE appid = ? AND kind = ?",
                [appid, kind],
            ).fetchone()
        return Credential(*row) if row else None

    def acquire(self, appid, kind, owner, now, until):
        """Take the fetch lease if nobody holds an unexpired one; return True if taken."""
        with self._db() as db, transaction(db):
            db.execute(
                "INSERT OR IGNORE INTO credentials (appid, kind) VALUES (?, ?)", [appid, kind]
            )
            cursor = db.execute(
                "UPDATE credentials SET lease_owner = ?, lease_until = ? "
                "WHERE appid = ? AND kind = ? AND (lease_owner IS NULL OR lease_until < ?)",
                [owner, until, appid, kind, now],
            )
        return cursor.rowcount == 1

    def renew(self, appid, kind, owner, now, until):
        """Extend ``owner``'s lease to ``until``; return False if another holder took it."""
        with self._db() as db, transaction(db):
            cursor = db.execute(
                "UPDATE credentials SET lease_until = ? "
                "WHERE appid = ? AND kind = ? AND lease_owner = ?",
                [until, appid, kind, owner],
            )
        return cursor.rowcount == 1

    def save(self, appid, kind, owner, value, expires_at):
        """Store a fresh value and release the lease; False if another holder took it over."""
        with self._db() as db, transaction(db):
            cursor = db.execute(
                "UPDATE credentials SET value = ?, expires_at = ?, lease_owner = NULL, "
                "lease_until = NULL, error_code = NULL, error_until = 0, updated_at = ? "
                "WHERE appid = ? AND kind = ? AND lease_owner = ?",
                [value, expires_at, time.time(), appid, kind, owner],
            )
        return cursor.rowcount == 1

    def release(self, appid, kind, owner):
        """Give the lease back without a new value."""
        with self._db() as db, transaction(db):
            db.execute(
                "UPDATE credentials SET lease_owner = NULL, lease_until = NULL "
                "WHERE appid = ? AND kind = ? AND lease_owner = ?",
                [appid, kind, owner],
            )

    def fail(self, appid, kind, owner, error_code, error_until):
        """Release the lease and remember a failure other workers should not repeat."""
        with self._db() as db, transaction(db):
            db.execute(
                "UPDATE credentials SET lease_owner = NULL, lease_until = NULL, "
                "error_code = ?, error_until = ? WHERE appid = ? AND kind = ? AND lease_owner = ?",
                [error_code, error_until, appid, kind, owner],
            )

    def note_failure(self, appid, kind, error_code, error_until):
        """Remember a failure of a call made without a lease (the code exchange)."""
        with self._db() as db, transaction(db):
            db.execute(
                "INSERT OR IGNORE INTO credentials (appid, kind) VALUES (?, ?)", [appid, kind]
            )
            db.execute(
                "UPDATE credentials SET error_code = ?, error_until = ? "
                "WHERE appid = ? AND kind = ?",
                [error_code, error_until, appid, kind],
            )

    def invalidate(self, appid, kind, value):
        """Drop ``value`` if it is still the stored one (a newer value is kept)."""
        with self._db() as db, transaction(db):
            db.execute(
                "UPDATE credentials SET value = NULL, expires_at = 0 "
                "WHERE appid = ? AND kind = ? AND value = ?",
                [appid, kind, value],
            )

    def recheck(self, appid, kind, value, now, until):
        """Open a re-check window until ``until`` and drop ``value``; False while one is open."""
        # One transaction for both: no worker reads the refused value once another one won
        # the window, so every worker ends up waiting for the one re-fetch.
        window = kind + ":recheck"
        with self._db() as db:
            row = db.execute(
                "SELECT expires_at FROM credentials WHERE appid = ? AND kind = ?",
                [appid, window],
            ).fetchone()
            if row and row[0] > now:
                return False  # the common case under a flood of reports: no write at all
            with transaction(db):
                db.execute(
                    "INSERT OR IGNORE INTO credentials (appid, kind) VALUES (?, ?)",
                    [appid, window],
                )
                cursor = db.execute(
                    "UPDATE credentials SET expires_at = ? "
                    "WHERE appid = ? AND kind = ? AND expires_at <= ?",
                    [until, appid, window, now],
                )
                if cursor.rowcount != 1:
                    return False
                db.execute(
                    "UPDATE credentials SET value = NULL, expires_at = 0 "
                    "WHERE appid = ? AND kind = ? AND value = ?",
                    [appid, kind, value],
                )
        return True

    def forget(self, appid, kind):
        """Delete everything stored for ``kind``: value, lease, failure, re-check window."""
        with self._db() as db, transaction(db):
            db.execute(
                "DELETE FROM credentials WHERE appid = ? AND kind IN (?, ?)",
                [appid, kind, kind + ":recheck"],
            )

    def statuses(self):
        """Return ``{(appid, kind): expires_at}`` of stored values (never the values)."""
        with self._db() as db:
            rows = db.execute(
                "SELECT appid, kind, expires_at FROM credentials WHERE value IS NOT NULL"
            ).fetchall()
        return {(appid, kind): expires for appid, kind, expires in rows}


# -- Flask glue ---------------------------------------------------------------------------


def get_db():
    """Return this request's connection, opening it on first use."""
    from flask import current_app, g

    if "db" not in g:
        g.db = connect(current_app.config["WXSITE_DATABASE"])
    return g.db


def close_db(exc=None):
    """Close this request's connection, if one was opened."""
    from flask import g

    db = g.pop("db", None)
    if db is not None:
        db.close()


def init_app(app):
    """Create or migrate the database at start-up and close connections after requests."""
    path = app.config["WXSITE_DATABASE"]
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    db = connect(path)
    try:
        migrate(db)
    finally:
        db.close()
    app.teardown_appcontext(close_db)
