"""All of wxsite's SQL, split by domain. Nothing else writes SQL.

Functions take the database first, so they run without Flask (tests use a temporary
file). Writers use ``transaction(db)`` (BEGIN IMMEDIATE: take the write lock up front
instead of failing halfway on an upgrade) and never keep it across an HTTP call. Callers
use the names re-exported here (``store.add_upload(db, …)``); only the glue at the bottom
touches Flask.
"""

import os

from .db import (  # noqa: F401
    BUSY_TIMEOUT,
    Busy,
    ConfigError,
    Conflict,
    Error,
    IntegrityError,
    StoreError,
    Unavailable,
    connect,
    marks,
    one,
    open_engine,
    ping,
    transaction,
)
from .migrations import (  # noqa: F401
    MIGRATIONS,
    applied,
    migrate,
)
from .accounts import (  # noqa: F401
    create_account,
    get_account,
    find_account,
    account_identities,
    list_accounts,
)
from .auth_states import (  # noqa: F401
    AUTH_STATE_KEEP,
    put_auth_state,
    get_auth_state,
    delete_auth_state,
    claim_auth_state,
    finish_auth_state,
    release_auth_state,
)
from .identities import (  # noqa: F401
    PROFILE_FIELDS,
    save_wechat_login,
    save_profile,
    save_web_token,
    get_wechat_user,
    create_login,
    get_login,
    revoke_login,
    BindingConflict,
    bind_account,
    unbind_account,
)
from .throttle import (  # noqa: F401
    take_attempt,
    clear_failures,
)
from .sharing import (  # noqa: F401
    referral_code,
    person_by_referral,
    visitor_key,
    record_share_visit,
    share_visits,
)
from .uploads import (  # noqa: F401
    add_upload,
    find_upload,
    get_upload,
    list_uploads,
    delete_upload,
    UPLOAD_FILES,
    queue_orphan_file,
    orphan_files,
    forget_orphan_files,
    upload_paths,
)
from .housekeeping import (  # noqa: F401
    KEEP_NOTIFICATIONS,
    KEEP_REVOKED_LOGINS,
    purge_expired,
)
from .pay import (  # noqa: F401
    LIVE_REFUNDS,
    REFUND_MOVES,
    create_order,
    set_order_prepay,
    close_order,
    get_order,
    list_orders,
    list_paid_orders,
    mark_paid,
    start_refund,
    RefundRefused,
    get_refund,
    refundable,
    update_refund,
    claim_order_query,
)
from .inbound import get_follow, record_delivery, set_follow  # noqa: F401
from .scan import create_scan, decide_scan, get_scan, redeem_scan  # noqa: F401
from .copy import CopyRefused, copy_site, counts  # noqa: F401
from .credentials import (  # noqa: F401
    CredentialStore,
)

# -- Flask glue ---------------------------------------------------------------------------


EXTENSION = "wxsite.store"


def engine(app=None):
    """Return the app's database engine (one per process, shared by its threads)."""
    from flask import current_app

    return (app or current_app).extensions[EXTENSION]


def get_db():
    """Return this request's connection, opening it on first use."""
    from flask import g

    if "db" not in g:
        g.db = engine().connect()
    return g.db


def close_db(exc=None):
    """Close this request's connection, if one was opened."""
    from flask import g

    db = g.pop("db", None)
    if db is not None:
        db.close()


def init_app(app):
    """Open the database, create or migrate it, and close connections after requests."""
    target = app.config["WXSITE_DATABASE"]
    if "://" not in target:
        os.makedirs(os.path.dirname(os.path.abspath(target)), exist_ok=True)
    try:
        # Enough connections for every thread of a worker, each with a second one lent
        # to the credential store while it holds its request's connection.
        opened = open_engine(target, pool_size=app.config.get("WXSITE_DB_POOL", 10))
        app.extensions[EXTENSION] = opened
        with opened.connection() as db:
            migrate(db)
    except Unavailable as exc:
        # Unreachable at start-up: one line naming WXSITE_DATABASE, like any bad setting.
        raise ConfigError(str(exc)) from None
    app.teardown_appcontext(close_db)
