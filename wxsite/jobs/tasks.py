"""What runs in the background: each job by name, its lease, and (periodic ones) its period.

Every job is idempotent: it looks at what the database says now and does only what is
still missing, so a second run (a retry, a message delivered twice, a run after a worker
died mid-way) changes nothing that the first one finished. A job's body runs inside the
app context of the process that runs it; it returns a short result for ``wx jobs`` or
raises (then it is retried with backoff, and failed when its tries are used up).
"""

from dataclasses import dataclass

from huey import crontab

from .. import clock, store


@dataclass(frozen=True)
class Job:
    name: str
    func: object
    #: A huey crontab for periodic jobs (their key is their name), else None.
    every: object = None
    doc: str = ""


JOBS = {}


class Retry(Exception):
    """A failure worth trying again at a known time (``delay`` seconds from now)."""

    def __init__(self, reason, delay=None):
        super().__init__(reason)
        self.delay = delay


class Permanent(Exception):
    """A failure no retry can mend: the job is failed at once."""


def job(name, every=None):
    """Register ``func`` as the job ``name`` (periodic: ``every`` is a huey crontab)."""

    def register(func):
        JOBS[name] = Job(name, func, every, (func.__doc__ or "").strip().split("\n")[0])
        return func

    return register


@job("voice.transcode")
def transcode_voice(upload_id):
    """Make the playable MP3 of a voice note (from its speex, else its AMR)."""
    from ..media.storage import transcode_voice as transcode

    return transcode(store.get_db(), upload_id)


@job("refund.retry")
def retry_refund(out_refund_no):
    """Send a refund whose call to WeChat Pay failed again, with the same out_refund_no."""
    from ..pay.refunds import retry_job

    return retry_job(store.get_db(), out_refund_no)


@job("pay.reconcile", every=crontab(minute="*"))
def reconcile_pay():
    """Ask WeChat Pay about refunds and orders whose notification never came; close overdue."""
    from ..pay.reconcile import reconcile_job

    return reconcile_job()


@job("maintenance.sweep", every=crontab(minute="*"))
def sweep():
    """Purge expired rows and orphaned or half-written files (one host per turn)."""
    from flask import current_app

    from ..maintenance import sweep_job

    return sweep_job(current_app._get_current_object())


#: A queued job this long overdue (or a running one past its lease) is put back on the queue.
RECOVER_AFTER = 300


@job("jobs.recover", every=crontab(minute="*"))
def recover():
    """Queue again the jobs the queue lost (a worker killed mid-run, a queue emptied)."""
    from flask import current_app

    from . import EXTENSION

    db = store.get_db()
    now = clock.now()
    if store.take_attempt(db, {"jobs:recover": 1}, 50, now):
        return "another process recovers this minute"
    queued = current_app.extensions[EXTENSION]
    stale = store.stale_jobs(db, now - RECOVER_AFTER, now)
    for row in stale:
        queued.put_back(row)
    if not stale:
        return "nothing lost"
    return f"{len(stale)} put back: " + ", ".join(row["key"] for row in stale)
