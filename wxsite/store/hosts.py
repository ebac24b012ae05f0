"""The hosts that run the site on one database, each with what it must share with the rest."""

import json

from .. import clock
from .db import transaction


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
