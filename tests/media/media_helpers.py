"""Real image and voice bytes for media tests."""

import io
import os

from PIL import Image

#: What media tests run with: a real job consumer in the site's process (voice notes are
#: transcoded by the voice.transcode job), polling its queue briskly, no periodic jobs.
JOBS_ON = {"WXSITE_JOBS_CONSUMER": "thread", "JOBS_PERIODIC": False, "JOBS_POLL_MAX": 0.2}


def image_bytes(fmt="JPEG", size=(64, 48), color=(200, 30, 30)):
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, fmt)
    return buffer.getvalue()


def blob_store(app):
    from wxsite.media import blobs

    return app.extensions[blobs.EXTENSION]


def stored_files(app, kind="images"):
    """Names under ``kind`` in the app's blob store, plus S3 mode's local temp files, sorted.

    Empty means nothing was kept and nothing half-written was left, on either store.
    """
    store = blob_store(app)
    names = [key.split("/", 1)[1] for key, _ in store.iter_keys() if key.startswith(kind + "/")]
    if store.local_temp_root:
        folder = os.path.join(store.local_temp_root, kind)
        names += os.listdir(folder) if os.path.isdir(folder) else []
    return sorted(names)


def jobs_settled(app, timeout=30.0):
    """Wait until the app's background jobs are done or failed; return their rows.

    The consumer runs in the site's own threads; this only waits for it (bounded), it
    never assumes how long a job takes.
    """
    import time

    from wxsite import store

    deadline = time.monotonic() + timeout
    while True:
        with app.app_context():
            rows = store.list_jobs(store.get_db(), limit=1000)
        if all(r["state"] in ("done", "failed") for r in rows):
            return rows
        assert time.monotonic() < deadline, f"jobs still running: {rows}"
        time.sleep(0.05)


def start_jobs(app):
    """Turn on and start an app's in-process job consumer (one built with it off)."""
    from wxsite import jobs

    app.config["WXSITE_JOBS_CONSUMER"] = "thread"
    assert jobs.get(app).start_consumer()
