"""Referral codes and the visits that came through a person's shared links."""

from .. import clock
from .db import transaction


def referral_code(db, person_id, new_code):
    """Return the person's referral code, storing ``new_code`` the first time."""
    with transaction(db):
        db.execute(
            "UPDATE people SET referral_code = :code WHERE id = :id AND referral_code IS NULL",
            {"code": new_code, "id": person_id},
        )
        return db.scalar("SELECT referral_code FROM people WHERE id = :id", {"id": person_id})


def person_by_referral(db, code):
    """Return the id of the person who shares with ``code`` (after merges), or None."""
    return db.scalar(
        "SELECT COALESCE(merged_into, id) FROM people WHERE referral_code = :code", {"code": code}
    )


def visitor_key(person_id):
    """Return how a person is recorded as the visitor of someone's shared link."""
    return f"person:{person_id}"


def record_share_visit(db, person_id, visitor_person_id, now=None):
    """Count one visit through a person's shared link (once per visiting person)."""
    if person_id == visitor_person_id:
        return
    with transaction(db):
        db.execute(
            "INSERT INTO share_visits (person_id, visitor, created_at) "
            "VALUES (:person, :visitor, :now) ON CONFLICT (person_id, visitor) DO NOTHING",
            {
                "person": person_id,
                "visitor": visitor_key(visitor_person_id),
                "now": now or clock.now(),
            },
        )


def share_visits(db, person_id):
    """Return how many visitors arrived through the person's shared links."""
    return db.scalar(
        "SELECT COUNT(*) FROM share_visits WHERE person_id = :person", {"person": person_id}
    )
