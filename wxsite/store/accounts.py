"""Site accounts (username + password hash)."""

import time

from .db import one, transaction


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
    return one(db, "SELECT * FROM accounts WHERE id = ?", [account_id])


def find_account(db, username):
    """Return the account with this username (case-insensitive), or None."""
    return one(db, "SELECT * FROM accounts WHERE username = ?", [username])


def account_identities(db, account_id):
    """Return the WeChat identities (any appid) of the person bound to the account."""
    return list(
        db.query(
            "SELECT w.id, w.appid, w.nickname, w.headimgurl, w.last_login_at FROM wechat_users w "
            "JOIN people p ON p.id = w.person_id WHERE p.account_id = ? ORDER BY w.id",
            [account_id],
        )
    )


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
