"""Site accounts (username + password hash)."""

from .. import clock
from .db import transaction


def create_account(db, username, password_hash, display_name=None):
    """Insert a site account; return its id. Raises ``store.Conflict`` if the name is taken."""
    with transaction(db):
        return db.scalar(
            "INSERT INTO accounts (username, password_hash, display_name, created_at) "
            "VALUES (:username, :hash, :display_name, :now) RETURNING id",
            {
                "username": username,
                "hash": password_hash,
                "display_name": display_name,
                "now": clock.now(),
            },
        )


def get_account(db, account_id):
    """Return the account row as a dict, or None."""
    return db.one("SELECT * FROM accounts WHERE id = :id", {"id": account_id})


def find_account(db, username):
    """Return the account with this username (case-insensitive), or None."""
    return db.one(
        "SELECT * FROM accounts WHERE lower(username) = lower(:username)", {"username": username}
    )


def account_identities(db, account_id):
    """Return the WeChat identities (any appid) of the person bound to the account."""
    return db.query(
        "SELECT w.id, w.appid, w.nickname, w.headimgurl, w.last_login_at FROM wechat_users w "
        "JOIN people p ON p.id = w.person_id WHERE p.account_id = :account ORDER BY w.id",
        {"account": account_id},
    )


def list_accounts(db):
    """Return every account with the WeChat identities bound to it."""
    return db.query(
        "SELECT a.id, a.username, a.display_name, a.created_at, "
        "COUNT(w.id) AS wechat_identities FROM accounts a "
        "LEFT JOIN people p ON p.account_id = a.id "
        "LEFT JOIN wechat_users w ON w.person_id = p.id "
        "GROUP BY a.id ORDER BY a.id"
    )
