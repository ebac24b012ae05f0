"""The hosts that run the site on one database, each with what it must share with the rest."""

import json

from .. import clock
from .db import transaction

#: The database server's own clock, in epoch seconds.
_SERVER_TIME = {
    "sqlite": "SELECT (julianday('now') - 2440587.5) * 86400.0",
    "postgresql": "SELECT CAST(extract(epoch FROM clock_timestamp()) AS double precision)",
}


def server_time(db):
    """Return the database server's clock (the one every host's leases are written beside)."""
    return float(db.scalar(_SERVER_TIME[db.name]))


def note_host(db, name, facts, now=None):
    """Record that host ``name`` started with ``facts`` (fingerprints, never secrets)."""
    with transaction(db):
        db.execute(
            "INSERT INTO hosts (name, facts, seen_at) VALUES (:name, :facts, :now) "
            "ON CONFLICT (name) DO UPDATE SET facts = excluded.facts, seen_at = excluded.seen_at",
            {"name": name, "facts": json.dumps(facts, sort_keys=True), "now": now or clock.now()},
        )


def recent_hosts(db, since):
    """Return ``{name: facts}`` of the hosts seen at or after ``since``."""
    rows = db.query(
        "SELECT name, facts FROM hosts WHERE seen_at >= :since ORDER BY name", {"since": since}
    )
    return {row["name"]: json.loads(row["facts"]) for row in rows}
