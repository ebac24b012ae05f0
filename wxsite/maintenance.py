"""Housekeeping: expired rows, and stored files that lost their row or were never finished.

A worker killed mid-download leaves ``.part-*`` / ``.clean-*`` / ``*.part.mp3`` temp files
(in the uploads folder, or in S3 mode in the local temp folder) and, in S3 mode, perhaps a
multipart upload never completed; one killed between putting a file into the store and
writing its row leaves a stored file nobody owns; deleted and merged-away uploads queue
their files in ``orphan_files``. The sweep removes all of these, through the blob store
(``wxsite.media.blobs``), so it works the same on a folder and on a bucket. It is the
periodic ``maintenance.sweep`` job (``wxsite.jobs``): offered every minute to every
consumer from its start, it sweeps at most once per ``INTERVAL`` seconds across every
process and host, taken in turn through a shared counter in the store.
"""

import logging
import os

from . import clock, store
from .media import blobs

log = logging.getLogger("wxsite.maintenance")

#: Seconds between two sweeps of the whole site (any process may take the turn).
INTERVAL = 600
#: Files younger than this are left alone: a request may still be writing or recording them.
GRACE = 3600
EXTENSION = "wxsite.maintenance"


def is_temporary(name):
    """Return True for the names downloads and transcodes write before their rename."""
    return name.startswith((".part-", ".clean-")) or name.endswith(".part.mp3")


def sweep(db, uploads, login_max_age, now=None):
    """Purge expired rows and remove orphaned or half-written files; return what was done.

    ``uploads`` is the blob store (a folder path is taken as a local one).
    """
    if isinstance(uploads, str):
        uploads = blobs.LocalBlobs(uploads)
    now = now or clock.now()
    cutoff = now - GRACE
    done = store.purge_expired(db, login_max_age, now)
    queued = store.orphan_files(db)
    removed = []
    for key in queued:
        try:
            uploads.delete(key)
        except ValueError:
            pass  # not a key the site makes: nothing of ours to remove
        except blobs.StorageUnavailable:
            break  # these stay queued for the next sweep; the rest would time out too
        removed.append(key)
    store.forget_orphan_files(db, removed)
    done["orphan_files"] = len(removed)
    done["temporary_files"] = done["unowned_files"] = 0
    owned = store.upload_paths(db)
    for key, modified in uploads.iter_keys():
        if modified > cutoff:
            continue
        if is_temporary(key.rsplit("/", 1)[1]):
            done["temporary_files"] += uploads.delete(key)
        elif key not in owned:
            log.warning("removing a stored file without its row: %s", key)
            done["unowned_files"] += uploads.delete(key)
    if uploads.local_temp_root:
        done["temporary_files"] += _sweep_temp_folder(uploads.local_temp_root, cutoff)
    done["incomplete_uploads"] = uploads.abort_incomplete(cutoff)
    if any(done.values()):
        log.info("sweep: %s", ", ".join(f"{k}={v}" for k, v in done.items() if v))
    return done


def _sweep_temp_folder(root, cutoff):
    """Remove temp files older than ``cutoff`` from S3 mode's local temp folder."""
    removed = 0
    for folder, _, names in os.walk(root):
        for name in names:
            path = os.path.join(folder, name)
            try:
                if is_temporary(name) and os.path.getmtime(path) <= cutoff:
                    os.unlink(path)
                    removed += 1
            except FileNotFoundError:
                continue
    return removed


def sweep_if_due(app):
    """Sweep when no process of the site has swept within ``INTERVAL`` seconds."""
    from .auth.users import LOGIN_MAX_AGE

    with app.app_context():
        db = store.get_db()
        try:
            if store.take_attempt(db, {"maintenance:sweep": 1}, INTERVAL):
                return None  # another process has the turn
            return sweep(db, app.extensions[blobs.EXTENSION], LOGIN_MAX_AGE)
        except (store.Error, OSError, blobs.BlobError) as exc:
            log.warning("sweep failed, will try again: %s", exc)
            return None


def sweep_job(app, now=None):
    """The maintenance.sweep job: sweep when it is this process's turn; failures raise."""
    from .auth.users import LOGIN_MAX_AGE

    db = store.get_db()
    if store.take_attempt(db, {"maintenance:sweep": 1}, INTERVAL, now):
        return "another process had the turn"
    done = sweep(db, app.extensions[blobs.EXTENSION], LOGIN_MAX_AGE, now)
    return ", ".join(f"{k}={v}" for k, v in done.items() if v) or "nothing to remove"
