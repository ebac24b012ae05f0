"""One store, two engines: SQLite (sqlite-utils) by default, PostgreSQL 15+ (psycopg 3) for many hosts.

The store writes each query once, in the SQL subset both engines accept, and runs it
through the small adapter here, which owns the real differences:

- **Parameters** are always named, ``:name``, passed as a dict. They become ``%(name)s``
  for psycopg (every literal ``%`` is doubled on the way). ``?`` placeholders and
  PostgreSQL's ``::`` casts are refused before anything runs: write ``CAST(x AS type)``.
  Placeholders inside ``'literals'``, ``"identifiers"`` and comments are left alone.
- **Rows** are plain dicts on both engines; ``execute`` returns the row count.
- **Write transactions**: ``conn.transaction()`` starts with ``BEGIN IMMEDIATE`` on SQLite
  (the one write lock is taken up front, so every writer is serialized) and ``BEGIN`` on
  PostgreSQL (READ COMMITTED: writers run side by side). A read-then-write that SQLite's
  single writer used to serialize needs a row lock on PostgreSQL: append ``conn.for_update``
  (``" FOR UPDATE"`` there, ``""`` on SQLite) to the SELECT, or write it as one statement
  (``UPDATE … SET n = n + 1``, ``INSERT … ON CONFLICT``). ``FOR UPDATE`` locks rows that
  exist; a row that may not exist yet is claimed with ``INSERT … ON CONFLICT DO NOTHING``.
- **Nesting**: a ``transaction()`` inside another is a savepoint on both engines.
- **An error inside a transaction spoils it** on both engines, as PostgreSQL does: further
  statements raise ``StoreError`` and the block rolls back. To recover from an expected
  error (say a ``Conflict``), wrap just that statement in a nested ``transaction()``, or
  better avoid the error with ``ON CONFLICT``.
- **Errors** come out as ``Busy`` (locked past the timeout: 503, try again), ``Conflict``
  (a unique or foreign-key violation), ``Unavailable`` (the database cannot be reached or
  opened), ``ConfigError`` (``WXSITE_DATABASE`` is wrong) or ``StoreError`` (anything else,
  a bug: syntax, NOT NULL, CHECK). Nothing outside this module needs sqlite3 or psycopg.

Not portable, so not used: ``INSERT OR IGNORE/REPLACE``, ``cursor.lastrowid`` (use
``RETURNING id``), ``COLLATE NOCASE`` (store a normalized copy), booleans as values (use
0/1 integers), multiple statements in one call. Column types are the store's business:
``REAL`` is 4 bytes on PostgreSQL (use ``DOUBLE PRECISION`` for timestamps) and ids need
``INTEGER PRIMARY KEY`` on SQLite but an identity column on PostgreSQL.

Connections are not shared between threads; engines are. Usage::

    engine = open_engine(settings["WXSITE_DATABASE"])
    with engine.connection() as conn, conn.transaction():
        n = conn.scalar(f"SELECT n FROM counters WHERE k = :k{conn.for_update}", {"k": "hits"})
        conn.execute("UPDATE counters SET n = :n WHERE k = :k", {"n": n + 1, "k": "hits"})
"""

import functools
import re
import select
import sqlite3
import time
from contextlib import contextmanager
from urllib.parse import quote, unquote, urlsplit

import sqlite_utils

from .config import ConfigError as SettingsError

try:  # PostgreSQL is an extra (pip install -e '.[postgres]'); SQLite needs none of it.
    import psycopg
    import psycopg_pool
    from psycopg.conninfo import conninfo_to_dict, make_conninfo
    from psycopg.rows import dict_row
except ImportError:  # pragma: no cover - exercised only without the extra
    psycopg = None

#: The setting every configuration message names.
SETTING = "WXSITE_DATABASE"

#: How long a statement waits for a lock (SQLite's busy timeout, PostgreSQL's lock_timeout).
BUSY_TIMEOUT = 5.0


# -- errors -------------------------------------------------------------------------------


class StoreError(Exception):
    """A database error; the subclasses are the ones callers handle."""


class Busy(StoreError):
    """Another connection held a lock past the timeout (or a deadlock/serialization failure)."""


class Conflict(StoreError):
    """A unique or foreign-key constraint refused the write; ``kind`` says which."""

    def __init__(self, message, kind):
        super().__init__(message)
        self.kind = kind  # "unique" or "foreign_key"


class Unavailable(StoreError):
    """The database cannot be reached or opened right now."""


class BadValue(StoreError):
    """A value the database cannot hold (a NUL in PostgreSQL text, say): the input's fault."""


class ConfigError(StoreError, SettingsError):
    """WXSITE_DATABASE does not lead to a usable database; the message says why."""


# -- one SQL text for both engines ----------------------------------------------------------

_TOKENS = re.compile(
    r"""
      '[^']*'                # string literal ('' escapes just make two literals)
    | "[^"]*"                # quoted identifier
    | --[^\n]*               # line comment
    | /\*.*?\*/              # block comment
    | (?P<cast>::)
    | :(?P<name>[A-Za-z_][A-Za-z0-9_]*)
    | (?P<qmark>\?)
    | (?P<percent>%)
    """,
    re.S | re.X,
)


@functools.lru_cache(maxsize=2048)
def convert(sql):
    """Return ``(psycopg_sql, names)`` for ``:name`` SQL, refusing what only one engine runs."""
    names = []

    def replace(m):
        if m["cast"]:
            raise ValueError(f"'::' casts do not run on SQLite; use CAST(x AS type): {sql!r}")
        if m["qmark"]:
            raise ValueError(f"use :name parameters, not '?': {sql!r}")
        if m["percent"]:
            return "%%"
        if m["name"]:
            names.append(m["name"])
            return f"%({m['name']})s"
        # psycopg reads every '%', even inside literals and comments.
        return m[0].replace("%", "%%")

    return _TOKENS.sub(replace, sql), frozenset(names)


def _check_params(sql, params):
    _, names = convert(sql)
    if params is None:
        params = {}
    elif not hasattr(params, "keys"):
        raise TypeError("SQL parameters are a dict of :name values")
    missing = names - params.keys()
    if missing:
        raise ValueError(f"missing SQL parameter(s) {', '.join(sorted(missing))}: {sql!r}")
    return params


# -- the common interface -----------------------------------------------------------------


class Connection:
    """One database connection (not thread-safe): statements, rows as dicts, transactions."""

    name = ""
    for_update = ""

    def __init__(self, engine):
        self.engine = engine
        self._depth = 0  # 0: autocommit; 1: a transaction; >1: savepoints inside it
        self._spoiled = False  # a statement failed inside the transaction
        self._closed = False

    # Each engine supplies these.
    _begin_sql = "BEGIN"

    def _run(self, sql, params, rows):
        raise NotImplementedError  # pragma: no cover

    def _run_many(self, sql, seq):
        raise NotImplementedError  # pragma: no cover

    def _errors(self):
        raise NotImplementedError  # pragma: no cover

    #: The driver's errors, and what turns one into a StoreError (as ``_errors`` does).
    _driver_errors = ()

    @staticmethod
    def _translate(exc):
        raise NotImplementedError  # pragma: no cover

    def _guarded(self, run, *args):
        if self._closed:
            raise StoreError("the connection is closed")
        if self._spoiled:
            raise StoreError(
                "an earlier statement in this transaction failed, so the transaction is "
                "void; catch expected errors around a nested transaction() instead"
            )
        # Each statement's own path: the errors are translated here rather than by the
        # _errors() context manager (the same translation, without its five calls).
        try:
            return run(*args)
        except self._driver_errors as exc:
            error = self._translate(exc)
            if self._depth:
                self._spoiled = True  # see below
            raise error from exc
        except StoreError:
            # PostgreSQL voids the transaction here; SQLite is made to match, so code
            # that works on one engine works on the other.
            if self._depth:
                self._spoiled = True
            raise

    def execute(self, sql, params=None):
        """Run one statement; return the number of rows it changed (or -1)."""
        return self._guarded(self._run, sql, _check_params(sql, params), False)

    def executemany(self, sql, seq_of_params):
        """Run one statement once per parameter dict."""
        seq = [_check_params(sql, p) for p in seq_of_params]
        self._guarded(self._run_many, sql, seq)

    def query(self, sql, params=None):
        """Run one statement; return all its rows as a list of dicts."""
        return self._guarded(self._run, sql, _check_params(sql, params), True)

    def one(self, sql, params=None):
        """Return the first row as a dict, or None."""
        rows = self.query(sql, params)
        return rows[0] if rows else None

    def scalar(self, sql, params=None):
        """Return the first column of the first row, or None."""
        rows = self.query(sql, params)
        return next(iter(rows[0].values())) if rows else None

    @property
    def in_transaction(self):
        """Whether a transaction() block is open on this connection."""
        return self._depth > 0

    def _control(self, sql):
        with self._errors():
            self._run(sql, {}, rows=False)

    @contextmanager
    def transaction(self):
        """Run the block as one write transaction (a savepoint when nested); roll back on error."""
        savepoint = f"wx_sp_{self._depth}" if self._depth else None
        self._guarded(
            self._run, f"SAVEPOINT {savepoint}" if savepoint else self._begin_sql, {}, False
        )
        self._depth += 1
        try:
            yield self
            if self._spoiled:
                raise StoreError(
                    "a statement in this transaction failed and the error was caught inside "
                    "it: rolled back; catch it around a nested transaction() instead"
                )
        except BaseException:
            self._depth -= 1
            self._rollback(savepoint)
            raise
        self._depth -= 1
        if savepoint:
            self._control(f"RELEASE SAVEPOINT {savepoint}")
            return
        try:
            self._control("COMMIT")
        except BaseException:
            self._rollback(None)
            raise

    def _rollback(self, savepoint):
        try:
            if savepoint:
                self._control(f"ROLLBACK TO SAVEPOINT {savepoint}")
                self._control(f"RELEASE SAVEPOINT {savepoint}")
            else:
                self._control("ROLLBACK")
        except StoreError:
            # The connection may be gone (that is often why we are rolling back); the
            # original error is the one worth raising, and a dead transaction is void.
            if not savepoint:
                self._discard()
        else:
            self._spoiled = False

    def _discard(self):
        """Forget this connection's state after a failure nothing can undo."""
        self._spoiled = False

    def close(self):
        """Close the connection (return it to the pool on PostgreSQL)."""
        self._closed = True

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


#: Every engine this process opened and has not closed (``close_all``). Strong references:
#: an open PostgreSQL pool must never be garbage-collected from one of its own threads.
_OPEN = set()


def close_all():
    """Close every engine this process opened (shutdown, and between tests)."""
    for engine in list(_OPEN):
        engine.close()


class Engine:
    """Opens connections to one database; safe to share between threads."""

    name = ""
    for_update = ""

    def __init__(self, busy_timeout):
        self.busy_timeout = busy_timeout
        self._closed = False
        _OPEN.add(self)

    def connect(self):
        """Return a new Connection; the caller must close() it."""
        raise NotImplementedError  # pragma: no cover

    @contextmanager
    def connection(self):
        """Lend a connection for the block."""
        conn = self.connect()
        try:
            yield conn
        finally:
            conn.close()

    @contextmanager
    def transaction(self):
        """Lend a connection for the block, inside one write transaction."""
        with self.connection() as conn, conn.transaction():
            yield conn

    def execute(self, sql, params=None):
        """Run one statement on a connection of its own; return the row count."""
        with self.connection() as conn:
            return conn.execute(sql, params)

    def query(self, sql, params=None):
        """Run one statement on a connection of its own; return its rows."""
        with self.connection() as conn:
            return conn.query(sql, params)

    def one(self, sql, params=None):
        """Return the first row of a statement run on a connection of its own."""
        with self.connection() as conn:
            return conn.one(sql, params)

    def scalar(self, sql, params=None):
        """Return the first value of a statement run on a connection of its own."""
        with self.connection() as conn:
            return conn.scalar(sql, params)

    def version(self):
        """Return the database software's version, e.g. ``"3.40.1"`` or ``"15.13"``."""
        raise NotImplementedError  # pragma: no cover

    def describe(self):
        """Return what `wx doctor` shows: engine, where, version, pool (never a password)."""
        raise NotImplementedError  # pragma: no cover

    @property
    def closed(self):
        """Whether ``close`` was called."""
        return self._closed

    def close(self):
        """Release the engine's resources; later connects raise Unavailable."""
        self._closed = True
        _OPEN.discard(self)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


#: PostgresEngine's tuning knobs; SQLite has nothing to tune them on and ignores them.
PG_OPTIONS = frozenset(
    {
        "pool_size",
        "pool_timeout",
        "connect_timeout",
        "statement_timeout",
        "idle_in_transaction_timeout",
        "reconnect_timeout",
    }
)


def open_engine(url_or_path, busy_timeout=BUSY_TIMEOUT, **options):
    """Open the database WXSITE_DATABASE names: a SQLite path or a ``postgresql://`` URL."""
    unknown = set(options) - PG_OPTIONS
    if unknown:
        raise TypeError(f"unknown engine option(s): {', '.join(sorted(unknown))}")
    target = str(url_or_path or "").strip()
    if not target:
        raise ConfigError(f"{SETTING} is empty: give a SQLite file path or a postgresql:// URL")
    if "://" in target:
        scheme = target.split("://", 1)[0].lower()
        if scheme not in ("postgresql", "postgres"):
            raise ConfigError(
                f"{SETTING}: unsupported scheme {scheme!r} (a SQLite file path or "
                "postgresql://user[:password]@host:port/db)"
            )
        return PostgresEngine(target, busy_timeout, **options)
    return SqliteEngine(target, busy_timeout)


# -- SQLite -----------------------------------------------------------------------------------

# Primary result codes (extended code & 0xff), from sqlite3.h.
_SQLITE_BUSY = {5, 6}  # SQLITE_BUSY, SQLITE_LOCKED
# PERM, READONLY, IOERR, CORRUPT, FULL, CANTOPEN, NOTADB: the file cannot be used at all.
_SQLITE_UNAVAILABLE = {3, 8, 10, 11, 13, 14, 26}
_SQLITE_CONFLICT = {1555: "unique", 2067: "unique", 787: "foreign_key"}


def _sqlite_error(exc):
    code = getattr(exc, "sqlite_errorcode", None)
    message = str(exc)
    if code in _SQLITE_CONFLICT:
        return Conflict(message, _SQLITE_CONFLICT[code])
    if code is not None and code & 0xFF in _SQLITE_BUSY:
        return Busy(message)
    if code is not None and code & 0xFF in _SQLITE_UNAVAILABLE:
        return Unavailable(message)
    return StoreError(message)


@contextmanager
def _sqlite_errors():
    try:
        yield
    except sqlite3.Error as exc:
        raise _sqlite_error(exc) from exc


class SqliteConnection(Connection):
    """A sqlite-utils Database in autocommit mode; transactions are explicit."""

    name = "sqlite"
    for_update = ""
    _begin_sql = "BEGIN IMMEDIATE"

    def __init__(self, engine, db):
        super().__init__(engine)
        self.db = db

    @property
    def native(self):
        """The ``sqlite_utils.Database``, for tools (a copy to PostgreSQL), not for store code."""
        return self.db

    def _errors(self):
        return _sqlite_errors()

    _driver_errors = sqlite3.Error
    _translate = staticmethod(_sqlite_error)

    def _run(self, sql, params, rows):
        cursor = self.db.execute(sql, params)
        if cursor.description is None:
            return [] if rows else cursor.rowcount
        # Fetch everything now: a write with RETURNING completes only when fully stepped.
        keys = [d[0] for d in cursor.description]
        fetched = [dict(zip(keys, row)) for row in cursor.fetchall()]
        return fetched if rows else cursor.rowcount

    def _run_many(self, sql, seq):
        self.db.conn.executemany(sql, seq)

    def _discard(self):
        super()._discard()
        if self.db.conn.in_transaction:
            try:
                self.db.conn.rollback()
            except sqlite3.Error:
                pass

    def close(self):
        """Close the SQLite connection."""
        if not self._closed:
            super().close()
            self.db.conn.close()


class SqliteEngine(Engine):
    """A SQLite file in WAL mode; one new connection per connect()."""

    name = "sqlite"
    for_update = ""

    def __init__(self, path, busy_timeout=BUSY_TIMEOUT):
        super().__init__(busy_timeout)
        if path == ":memory:" or path.startswith("file:"):
            raise ConfigError(f"{SETTING}: give a SQLite file path (each connection opens it)")
        self.path = path
        with self.connection() as conn:
            self._wal(conn)

    def _wal(self, conn):
        # WAL persists in the file; switching while another process does can answer
        # "locked" at once, without the busy handler, so retry within the busy timeout.
        deadline = time.monotonic() + max(self.busy_timeout, 1.0)
        while True:
            try:
                if conn.scalar("PRAGMA journal_mode") != "wal":
                    conn.scalar("PRAGMA journal_mode = WAL")
                return
            except Busy:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def connect(self):
        """Open a new connection with a busy timeout and foreign keys on."""
        if self._closed:
            raise Unavailable("the database engine is closed")
        try:
            raw = sqlite3.connect(
                self.path,
                timeout=self.busy_timeout,
                isolation_level=None,  # autocommit; transaction() says BEGIN IMMEDIATE itself
                check_same_thread=False,  # Flask may close it on another thread
            )
        except sqlite3.Error as exc:
            raise Unavailable(
                f"{SETTING}: cannot open the SQLite database {self.path}: {exc}"
            ) from exc
        try:
            with _sqlite_errors():
                raw.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout * 1000)}")
                raw.execute("PRAGMA foreign_keys = ON")
                raw.execute("PRAGMA synchronous = NORMAL")  # WAL makes NORMAL crash-safe
        except StoreError as exc:
            raw.close()
            raise Unavailable(
                f"{SETTING}: cannot use the SQLite database {self.path}: {exc}"
            ) from exc
        return SqliteConnection(self, sqlite_utils.Database(raw, execute_plugins=False))

    def version(self):
        """Return the SQLite library's version."""
        return sqlite3.sqlite_version

    def describe(self):
        """Return the engine, file, version and journal mode."""
        info = {"engine": self.name, "database": self.path, "version": self.version()}
        try:
            info["journal_mode"] = self.scalar("PRAGMA journal_mode")
        except StoreError as exc:
            info["error"] = str(exc)
        info["busy_timeout"] = self.busy_timeout
        return info


# -- PostgreSQL -------------------------------------------------------------------------------

_PG_CONFLICT = {"23505": "unique", "23503": "foreign_key"}
# lock_timeout, serialization failure, deadlock, statement_timeout: all "try again later".
_PG_BUSY = {"55P03", "40001", "40P01", "57014"}
# Connection exception, insufficient resources, shutdown/crash/cannot-connect-now, auth, db.
_PG_UNAVAILABLE_CLASSES = ("08", "53", "57P", "28", "3D")
# What libpq says when the server answered but refused this user or database.
_PG_REFUSED = (
    "password authentication failed",
    "authentication failed",
    "no password supplied",
    "does not exist",
    "no pg_hba.conf entry",
    "not permitted to log in",
    "permission denied for database",
)


def _pg_error(exc):
    message = _first_line(exc)
    state = getattr(exc, "sqlstate", None) or ""
    if state in _PG_CONFLICT:
        return Conflict(message, _PG_CONFLICT[state])
    if state in _PG_BUSY:
        return Busy(message)
    if isinstance(exc, psycopg.DataError):  # class 22, and psycopg's own NUL refusal
        return BadValue(message)
    if isinstance(exc, psycopg_pool.PoolTimeout):
        return Unavailable(f"no PostgreSQL connection: {message} (server down or pool exhausted)")
    if state.startswith(_PG_UNAVAILABLE_CLASSES) or isinstance(
        exc, (psycopg.OperationalError, psycopg.InterfaceError)
    ):
        return Unavailable(f"PostgreSQL unavailable: {message}")
    return StoreError(message)


def _first_line(exc):
    return " ".join(str(exc).split()) or type(exc).__name__


@contextmanager
def _pg_errors():
    try:
        yield
    except psycopg.Error as exc:
        raise _pg_error(exc) from exc


class PostgresConnection(Connection):
    """A pooled psycopg connection in autocommit mode; transactions are explicit."""

    name = "postgresql"
    for_update = " FOR UPDATE"

    def __init__(self, engine, raw):
        super().__init__(engine)
        self.raw = raw
        self._fresh = True  # nothing has run on it since it was lent

    @property
    def native(self):
        """The ``psycopg.Connection``, for tools (a copy from SQLite), not for store code."""
        self._fresh = False  # what a tool runs on it is not ours to run again
        return self.raw

    def _errors(self):
        return _pg_errors()

    _driver_errors = psycopg.Error if psycopg is not None else ()
    _translate = staticmethod(_pg_error)

    def _run(self, sql, params, rows):
        if not self._fresh:
            return self._send(sql, params, rows)
        # The first statement on a connection just lent: if the connection turns out to
        # have died while it sat idle (a server restart the lend-time look did not see),
        # run it once more on a new one. Only when it cannot have written anything: the
        # connection is dead, and the statement opens a transaction or only reads, so
        # running it twice is running it once.
        self._fresh = False
        try:
            return self._send(sql, params, rows)
        except psycopg.OperationalError as exc:
            if not (_dead(self.raw, exc) and _rerunnable(sql)):
                raise
        self.engine._drop(self.raw)
        self.raw = None
        # Its idle neighbours died at the same moment: this one is asked before use.
        self.raw = self.engine._lend(ping=True)
        return self._send(sql, params, rows)

    def _send(self, sql, params, rows):
        if self.raw is None:
            raise Unavailable("PostgreSQL unavailable: the connection was lost")
        with self.raw.cursor() as cur:
            cur.execute(convert(sql)[0], params)
            if rows:
                return cur.fetchall() if _has_rows(cur.pgresult) else []
            return cur.rowcount

    def _run_many(self, sql, seq):
        self._fresh = False
        if self.raw is None:
            raise Unavailable("PostgreSQL unavailable: the connection was lost")
        with self.raw.cursor() as cur:
            cur.executemany(convert(sql)[0], seq)

    def close(self):
        """Give the connection back to the pool (it rolls back anything left open)."""
        if not self._closed:
            super().close()
            if self.raw is not None:  # None only when a replacement could not be had
                self.engine.pool.putconn(self.raw)


class PostgresEngine(Engine):
    """A small psycopg_pool.ConnectionPool with short timeouts on every connection."""

    name = "postgresql"
    for_update = " FOR UPDATE"

    def __init__(
        self,
        url,
        busy_timeout=BUSY_TIMEOUT,
        *,
        pool_size=4,
        pool_timeout=None,
        connect_timeout=3,
        statement_timeout=15.0,
        idle_in_transaction_timeout=60.0,
        reconnect_timeout=10.0,
    ):
        super().__init__(busy_timeout)
        if psycopg is None:
            raise ConfigError(
                f"{SETTING} is a PostgreSQL URL but psycopg is not installed: "
                "pip install -e '.[postgres]'"
            )
        params = _parse_url(url)
        self._password = params.get("password") or ""
        self.where = _display(params)
        self.pool_size = pool_size
        self.pool_timeout = busy_timeout if pool_timeout is None else pool_timeout
        ms = lambda seconds: int(seconds * 1000)  # noqa: E731
        options = " ".join(
            filter(
                None,
                [
                    params.pop("options", ""),
                    f"-c lock_timeout={ms(busy_timeout)}",
                    f"-c statement_timeout={ms(statement_timeout)}",
                    f"-c idle_in_transaction_session_timeout={ms(idle_in_transaction_timeout)}",
                ],
            )
        )
        settings = {
            "connect_timeout": max(2, int(connect_timeout)),  # libpq's floor is 2 s
            "application_name": "wxsite",
            # A host that vanishes (no RST) must not hang a worker: the kernel gives up on
            # unacknowledged data, and keepalives find idle connections that died.
            "tcp_user_timeout": ms(statement_timeout + connect_timeout),
            "keepalives": 1,
            "keepalives_idle": 30,
            "keepalives_interval": 10,
            "keepalives_count": 3,
        }
        settings.update(params)  # what the URL says explicitly wins
        settings["options"] = options
        conninfo = make_conninfo("", **settings)
        self._server_version = self._probe(conninfo)
        self.pool = psycopg_pool.ConnectionPool(
            conninfo,
            kwargs={"autocommit": True, "row_factory": dict_row},
            min_size=1,
            max_size=pool_size,
            open=True,
            name="wxsite",
            timeout=self.pool_timeout,
            # Give up a failing background reconnect soon: the next request then starts a
            # fresh attempt at once instead of waiting out a long exponential backoff.
            reconnect_timeout=reconnect_timeout,
            num_workers=2,
        )

    def _scrub(self, text):
        if self._password:
            for secret in {self._password, _quote(self._password)}:
                text = text.replace(secret, "***")
        return text

    def _probe(self, conninfo):
        # Connect once directly, so a bad URL fails now with libpq's reason (the pool
        # would only say "timeout" later).
        try:
            with psycopg.connect(conninfo, autocommit=True) as conn:
                version = conn.info.server_version
        except psycopg.Error as exc:
            cause = self._scrub(_first_line(exc))
            if any(s in cause for s in _PG_REFUSED):
                raise ConfigError(
                    f"{SETTING}: {self.where} refused the connection: {cause}"
                ) from None
            raise Unavailable(f"{SETTING}: cannot reach {self.where}: {cause}") from None
        if version < 150000:
            raise ConfigError(
                f"{SETTING}: {self.where} runs PostgreSQL {_version(version)}; "
                "15 or later is needed"
            )
        return version

    def connect(self):
        """Borrow a pooled connection that has not died, waiting at most the pool timeout."""
        return PostgresConnection(self, self._lend())

    def _lend(self, ping=False):
        deadline = time.monotonic() + self.pool_timeout
        while True:
            try:
                raw = self.pool.getconn(timeout=max(deadline - time.monotonic(), 0.001))
            except psycopg.Error as exc:
                raise Unavailable(
                    self._scrub(f"{SETTING}: {self.where}: {_pg_error(exc)}")
                ) from exc
            # An idle connection may have died with a server restart. No round trip to
            # find out: an idle connection's socket has nothing to read, and a server
            # that went away left its goodbye (or the end of the stream) there. Only then
            # does one empty round trip decide. (A death this look cannot see, such as a
            # restart a moment ago, is caught by the first statement: PostgresConnection.)
            if not ping and not _unasked_input(raw):
                return raw
            try:
                raw.execute("")
            except psycopg.Error:
                self._drop(raw)
                continue
            return raw

    def _drop(self, raw):
        """Close a dead connection and give it back; the pool replaces it in the background."""
        raw.close()
        self.pool.putconn(raw)

    def version(self):
        """Return the server's version, e.g. ``"15.13"``."""
        return _version(self._server_version)

    def describe(self):
        """Return the engine, server (no password), version and pool usage."""
        stats = self.pool.get_stats()
        info = {
            "engine": self.name,
            "database": self.where,
            "version": self.version(),
            "pool": {
                "min": stats.get("pool_min"),
                "max": stats.get("pool_max"),
                "open": stats.get("pool_size"),
                "idle": stats.get("pool_available"),
                "waiting": stats.get("requests_waiting", 0),
            },
            "busy_timeout": self.busy_timeout,
        }
        try:
            info["version"] = self.scalar("SHOW server_version").split()[0]
        except StoreError as exc:
            info["error"] = self._scrub(str(exc))
        return info

    def close(self):
        """Close the pool and its connections."""
        super().close()
        if getattr(self, "pool", None) is not None:  # None when the first probe failed
            self.pool.close()


#: Results that carry rows (psycopg's own test for ``cursor.description``).
_ROWS = frozenset(
    getattr(psycopg.pq.ExecStatus, name)
    for name in ("TUPLES_OK", "SINGLE_TUPLE", "TUPLES_CHUNK")
    if psycopg is not None and hasattr(psycopg.pq.ExecStatus, name)
)


def _has_rows(result):
    """Whether a statement's result has rows to fetch: ``cursor.description is not None``,
    without building a Column object per column to say so."""
    return bool(result) and bool(result.nfields or result.status in _ROWS)


def _unasked_input(raw):
    """Whether an idle connection's socket has something to read (or is gone)."""
    if raw.closed or raw.broken:
        return True
    try:
        poller = select.poll()
        poller.register(raw.fileno(), select.POLLIN | select.POLLPRI)
        return bool(poller.poll(0))
    except (AttributeError, OSError, ValueError, psycopg.Error):
        return True  # no socket to look at (or no poll here): let the round trip decide


#: The server ended the session: admin shutdown, crash shutdown, cannot connect now.
_PG_ENDED = frozenset({"57P01", "57P02", "57P03"})


def _dead(raw, exc):
    """Whether a statement's failure means the connection is gone (not a timeout, a lock)."""
    state = getattr(exc, "sqlstate", None) or ""
    return raw.closed or raw.broken or state in _PG_ENDED or state.startswith("08")


#: Statements that change nothing, so running one again on a new connection is safe. (A
#: SELECT of a function that writes would not be: the store's one, setval() when copying
#: a database, sets the same value again.)
_RERUNNABLE = frozenset({"BEGIN", "SELECT", "SHOW"})


def _rerunnable(sql):
    words = sql.split(None, 1)
    return bool(words) and words[0].upper() in _RERUNNABLE


def _version(num):
    return f"{num // 10000}.{num % 10000}"


def _quote(text):
    return quote(text, safe="")


#: user, then the password up to the LAST "@": a password with a raw "@" or "/" (not
#: percent-encoded) must not leave its tail in the message.
_USERINFO = re.compile(r"(://[^:/@]*):(.*)@")


def _redact(url):
    return _USERINFO.sub(r"\1:***@", url, count=1)


def _without_password(url, text):
    """``text`` with the URL's password, and every piece of it a parser may quote, starred."""
    found = _USERINFO.search(url)
    raw = found.group(2) if found else ""
    pieces = {raw, unquote(raw), *re.split(r"[@/:?#]", raw)}
    for piece in sorted((p for p in pieces if len(p) > 1), key=len, reverse=True):
        text = text.replace(piece, "***")
    return text


def _parse_url(url):
    """Return libpq parameters for a postgresql:// URL, or raise ConfigError saying what is wrong."""
    shown = _redact(url)
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError as exc:
        cause = _without_password(url, str(exc))
        raise ConfigError(
            f"{SETTING}: malformed PostgreSQL URL {shown}: {cause} "
            "(percent-encode @, /, : and # in a password)"
        ) from None
    try:
        params = conninfo_to_dict(url)
    except psycopg.Error as exc:
        cause = _without_password(url, _first_line(exc))
        raise ConfigError(f"{SETTING}: malformed PostgreSQL URL {shown}: {cause}") from None
    if not params.get("host"):
        raise ConfigError(
            f"{SETTING}: no host in {shown} (postgresql://user[:password]@host:port/db)"
        )
    if not params.get("dbname"):
        raise ConfigError(
            f"{SETTING}: no database name in {shown} (postgresql://user[:password]@host:port/db)"
        )
    return params


def _display(params):
    user = f"{params['user']}@" if params.get("user") else ""
    port = f":{params['port']}" if params.get("port") else ""
    return f"postgresql://{user}{params['host']}{port}/{params['dbname']}"
