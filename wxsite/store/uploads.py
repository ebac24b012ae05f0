"""Stored media rows, and the queue of files whose rows are gone."""

from .. import clock
from .db import transaction

#: The columns of ``uploads`` that name a stored file.
UPLOAD_FILES = ("path", "hq_path", "playable_path")
_SAME_CONTENT = "person_id = :person_id AND kind = :kind AND sha256 = :sha256"


def add_upload(db, person_id, kind, media_id, path, sha256, size, content_type, **extra):
    """Insert an upload; return ``(row, created)`` — an existing row if it is a duplicate."""
    values = dict(
        person_id=person_id,
        kind=kind,
        media_id=media_id,
        path=path,
        sha256=sha256,
        size=size,
        content_type=content_type,
        created_at=clock.now(),
        **extra,
    )
    cols = ", ".join(values)
    names = ", ".join(f":{k}" for k in values)
    with transaction(db):
        # The unique (person, kind, sha256) decides between concurrent uploads of one file.
        created = db.execute(
            f"INSERT INTO uploads ({cols}) VALUES ({names}) "
            "ON CONFLICT (person_id, kind, sha256) DO NOTHING",
            values,
        )
        row = db.one(f"SELECT * FROM uploads WHERE {_SAME_CONTENT}", values)
    return row, created == 1


def find_upload(db, person_id, kind, sha256):
    """Return the person's upload with this content, or None."""
    return db.one(
        f"SELECT * FROM uploads WHERE {_SAME_CONTENT}",
        {"person_id": person_id, "kind": kind, "sha256": sha256},
    )


def get_upload(db, upload_id, person_id):
    """Return the upload if it belongs to ``person_id``, else None."""
    return db.one(
        "SELECT * FROM uploads WHERE id = :id AND person_id = :person",
        {"id": upload_id, "person": person_id},
    )


def upload_row(db, upload_id):
    """Return the upload ``upload_id`` whoever owns it (background jobs), or None."""
    return db.one("SELECT * FROM uploads WHERE id = :id", {"id": upload_id})


def set_playable(db, upload_id, path):
    """Record a voice note's playable copy; return False if it is gone or has one already."""
    with transaction(db):
        changed = db.execute(
            "UPDATE uploads SET playable_path = :path WHERE id = :id AND playable_path IS NULL",
            {"path": path, "id": upload_id},
        )
    return changed == 1


def list_uploads(db, person_id, kind):
    """Return the person's uploads of ``kind``, newest first."""
    return db.query(
        "SELECT * FROM uploads WHERE person_id = :person AND kind = :kind ORDER BY id DESC",
        {"person": person_id, "kind": kind},
    )


def delete_upload(db, upload_id, person_id):
    """Delete the person's upload; return the deleted row (to remove its files) or None.

    Its files are queued in ``orphan_files`` in the same transaction, so a process killed
    before it removes them leaves them to the sweeper, not on disk for ever.
    """
    with transaction(db):
        row = db.one(
            f"SELECT * FROM uploads WHERE id = :id AND person_id = :person{db.for_update}",
            {"id": upload_id, "person": person_id},
        )
        if row:
            db.execute("DELETE FROM uploads WHERE id = :id", {"id": upload_id})
            for column in UPLOAD_FILES:
                if row[column]:
                    queue_orphan_file(db, row[column])
    return row


def queue_orphan_file(db, path, now=None):
    """Record a stored file whose row is gone, for the sweeper to remove."""
    db.execute(
        "INSERT INTO orphan_files (path, created_at) VALUES (:path, :now) "
        "ON CONFLICT (path) DO NOTHING",
        {"path": path, "now": now or clock.now()},
    )


def orphan_files(db, limit=1000):
    """Return queued orphan file paths (relative to the uploads folder)."""
    return [
        r["path"] for r in db.query("SELECT path FROM orphan_files LIMIT :limit", {"limit": limit})
    ]


def forget_orphan_files(db, paths):
    """Drop queue entries whose files are gone."""
    with transaction(db):
        for path in paths:
            db.execute("DELETE FROM orphan_files WHERE path = :path", {"path": path})


def upload_paths(db):
    """Return every stored file path any upload row names."""
    paths = set()
    for row in db.query("SELECT path, hq_path, playable_path FROM uploads"):
        paths.update(p for p in row.values() if p)
    return paths
