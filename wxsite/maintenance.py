"""Housekeeping: expired rows, and stored files that lost their row or were never finished.

A worker killed mid-download leaves ``.part-*`` / ``.clean-*`` / ``*.part.mp3`` files; one
killed between renaming a file into place and writing its row leaves a file nobody owns;
deleted and merged-away uploads queue their files in ``orphan_files``. The sweep removes
all of these. It runs in a background thread at start-up and then every ``INTERVAL``
seconds, taken in turn by one process of the site (a shared counter in the store).
"""

import logging
import os
import threading
import time

from flask import current_app

from . import store

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
    """Purge expired rows and remove orphaned or half-written files; return what was done."""
    now = now or time.time()
    done = store.purge_expired(db, login_max_age, now)
    queued = store.orphan_files(db)
    for relative in queued:
        _unlink(os.path.join(uploads, relative))
    store.forget_orphan_files(db, queued)
    done["orphan_files"] = len(queued)
    done["temporary_files"] = done["unowned_files"] = 0
    owned = store.upload_paths(db)
    for folder, _, names in os.walk(uploads):
        for name in names:
            path = os.path.join(folder, name)
            try:
                if os.path.getmtime(path) > now - GRACE:
                    continue
            except FileNotFoundError:
                continue
            if is_temporary(name):
                done["temporary_files"] += _unlink(path)
            elif os.path.relpath(path, uploads) not in owned:
                log.warning("removing a stored file without its row: %s", name)
                done["unowned_files"] += _unlink(path)
    if any(done.values()):
        log.info("sweep: %s", ", ".join(f"{k}={v}" for k, v in done.items() if v))
    return done


def _unlink(path):
    try:
        os.unlink(path)
        return 1
    except FileNotFoundError:
        return 0


def sweep_if_due(app):
    """Sweep when no process of the site has swept within ``INTERVAL`` seconds."""
    from .auth.users import LOGIN_MAX_AGE

    with app.app_context():
        db = store.get_db()
        try:
            if store.take_attempt(db, {"maintenance:sweep": 1}, INTERVAL):
                return None  # another process has the turn
            return sweep(db, app.config["WXSITE_UPLOADS"], LOGIN_MAX_AGE)
        except (store.Error, OSError) as exc:
            log.warning("sweep failed, will try again: %s", exc)
            return None


def _start(app):
    thread = threading.Thread(target=sweep_if_due, args=(app,), name="wxsite-sweep", daemon=True)
    thread.start()
    app.extensions[EXTENSION]["thread"] = thread
    return thread


def init_app(app):
    """Sweep at start-up, then let a request start a sweep thread when one is due."""
    app.extensions[EXTENSION] = {"next": time.monotonic() + INTERVAL, "thread": None}
    _start(app)

    @app.after_request
    def maybe_sweep(response):
        state = current_app.extensions[EXTENSION]
        if time.monotonic() >= state["next"]:
            state["next"] = time.monotonic() + INTERVAL
            _start(current_app._get_current_object())
        return response
