"""All of wxsite's SQL, split by domain (and the Redis credential store beside the SQL one).

Functions take the database first, so they run without Flask (tests use a temporary
file). Writers use ``transaction(db)`` (BEGIN IMMEDIATE: take the write lock up front
instead of failing halfway on an upgrade) and never keep it across an HTTP call. Callers
use the names re-exported here (``store.add_upload(db, …)``); only the glue at the bottom
touches Flask.
"""

import os
import threading

from flask import current_app, g  # for the Flask glue at the bottom only

from .db import (  # noqa: F401
    BUSY_TIMEOUT,
    BadValue,
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
    AccountAlreadyBound,
    BindingConflict,
    PersonAlreadyBound,
    bind_account,
    unbind_account,
)
from .hosts import (  # noqa: F401
    note_host,
    recent_hosts,
    server_time,
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
    upload_row,
    set_playable,
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
from .jobs import (  # noqa: F401
    ACTIVE as JOB_ACTIVE,
    ensure_periodic,
    finish_job,
    get_job,
    job_counts,
    job_states,
    list_jobs,
    oldest_waiting,
    queue_job,
    stale_jobs,
    start_job,
    touch_job,
)
from .inbound import get_follow, record_delivery, set_follow  # noqa: F401
from .scan import create_scan, decide_scan, get_scan, redeem_scan, scan_by_scene  # noqa: F401
from .copy import CopyRefused, copy_site, counts  # noqa: F401
from .credentials import (  # noqa: F401
    CredentialStore,
)

# -- Flask glue ---------------------------------------------------------------------------


EXTENSION = "wxsite.store"
#: Where each thread keeps its SQLite connection between requests.
HELD = "wxsite.store.held"


class _Held:
    """A thread's SQLite connection, closed when the thread ends and its thread-local goes."""

    __slots__ = ("conn",)

    def __init__(self, conn):
        self.conn = conn

    def __del__(self):
        try:
            self.conn.close()
        except Exception:  # pragma: no cover - interpreter shutdown
            pass


def engine(app=None):
    """Return the app's database engine (one per process, shared by its threads)."""
    return (app or current_app).extensions[EXTENSION]


def get_db():
    """Return this request's connection: the thread's own on SQLite, a pooled one otherwise."""
    ctx = g._get_current_object()
    db = ctx.get("db")
    if db is None:
        db = ctx.db = _lend(current_app._get_current_object())
    return db


def _lend(app):
    opened = app.extensions[EXTENSION]
    if opened.name != "sqlite":
        # A pooled connection, lent without a ping (engines: a dead one is replaced).
        return opened.connect()
    # Opening a SQLite connection (and its PRAGMAs) costs more than the page's own
    # queries: each thread keeps one for its life. Autocommit, so every statement
    # sees the latest commit, a revoked login included.
    local = app.extensions[HELD]
    held = getattr(local, "held", None)
    if held is None or held.conn.engine is not opened or opened.closed:
        held = local.held = _Held(opened.connect())
    return held.conn


def close_db(exc=None):
    """Release this request's connection: back to its thread, or closed/returned to the pool."""
    db = g.pop("db", None)
    if db is None:
        return
    held = getattr(current_app.extensions[HELD], "held", None)
    if held is None or held.conn is not db:
        db.close()
    elif db.in_transaction or db.native.conn.in_transaction:
        # A request that left a transaction open must not hand it to the next one.
        current_app.extensions[HELD].held = None
        db.close()


def init_app(app):
    """Open the database, create or migrate it, and release connections after requests."""
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
    app.extensions[HELD] = threading.local()
    app.teardown_appcontext(close_db)
