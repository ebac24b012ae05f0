"""Moving a site: copy a SQLite site's data into an empty PostgreSQL database (or back)."""

from .db import open_engine, transaction
from .migrations import migrate

#: What a site is, in the order foreign keys need. Transient rows (authorization attempts,
#: throttles, cached credentials) are not copied: they rebuild themselves.
TABLES = (
    "accounts",
    "people",
    "wechat_users",
    "logins",
    "uploads",
    "share_visits",
    "orders",
    "refunds",
    "deliveries",
    "followers",
    "orphan_files",
)
#: Tables whose ``id`` the target numbers itself: its counter must continue after the copy.
NUMBERED = ("accounts", "people", "wechat_users", "uploads", "share_visits")


class CopyRefused(Exception):
    """The copy cannot be made (the target holds data, or the counts disagree)."""


def counts(db):
    """Return ``{table: rows}`` for every table a copy moves."""
    return {table: db.scalar(f"SELECT COUNT(*) FROM {table}") for table in TABLES}


def copy_site(source, target_url, progress=lambda table, rows: None):
    """Copy every table of ``source`` (a connection) into the database at ``target_url``.

    The target is migrated first and must be empty; everything is written in one
    transaction, then the row counts are compared. Returns the counts.
    """
    target = open_engine(target_url)
    try:
        with target.connection() as db:
            migrate(db)
            if any(counts(db).values()):
                raise CopyRefused(
                    "the target database already holds a site: copy into an empty one"
                )
            with transaction(db):
                for table in TABLES:
                    rows = source.query(f"SELECT * FROM {table} ORDER BY 1")
                    _insert(db, table, rows)
                    progress(table, len(rows))
                _link_merged_people(db, source)
                if db.name == "postgresql":
                    for table in NUMBERED:
                        db.scalar(
                            f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                            f"COALESCE((SELECT MAX(id) FROM {table}), 0) + 1, false)"
                        )
            copied, expected = counts(db), counts(source)
    finally:
        target.close()
    if copied != expected:
        raise CopyRefused(f"row counts differ after the copy: {expected} → {copied}")
    return copied


def _insert(db, table, rows):
    if not rows:
        return
    columns = list(rows[0])
    if table == "people":
        # A person may point at one merged into later (a higher id): link after inserting.
        rows = [{**row, "merged_into": None} for row in rows]
    names = ", ".join(columns)
    params = ", ".join(f":{c}" for c in columns)
    db.executemany(f"INSERT INTO {table} ({names}) VALUES ({params})", rows)


def _link_merged_people(db, source):
    merged = source.query("SELECT id, merged_into FROM people WHERE merged_into IS NOT NULL")
    if merged:
        db.executemany("UPDATE people SET merged_into = :merged_into WHERE id = :id", merged)
