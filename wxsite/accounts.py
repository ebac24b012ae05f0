"""Site accounts: password hashing and checks over the store."""

from werkzeug.security import check_password_hash, generate_password_hash

from . import store

MIN_PASSWORD = 8
# Checked against when the username is unknown, so both failures cost the same time.
_DUMMY_HASH = generate_password_hash("not-a-real-password")


class AccountError(ValueError):
    """A username or password that cannot be used; the message is for the operator (accounts are made on the command line)."""


def create(db, username, password, display_name=None):
    """Create an account and return its id."""
    username = (username or "").strip()
    if not username or len(username) > 64 or any(c.isspace() for c in username):
        raise AccountError("a username is 1–64 characters, without spaces")
    if len(password or "") < MIN_PASSWORD:
        raise AccountError(f"a password has at least {MIN_PASSWORD} characters")
    try:
        return store.create_account(db, username, generate_password_hash(password), display_name)
    except store.IntegrityError:
        raise AccountError(f"username {username} is taken") from None


def authenticate(db, username, password):
    """Return the account if the password matches, else None (same cost either way)."""
    account = store.find_account(db, (username or "").strip())
    pw_hash = account["password_hash"] if account else _DUMMY_HASH
    ok = check_password_hash(pw_hash, password or "")
    return account if account and ok else None
