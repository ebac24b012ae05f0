"""Background jobs: one row per job key, its state, tries and last error (``wxsite.jobs``).

The queue (huey) carries the messages; this table is the record every host reads: what
is queued, running, waiting to be retried, done or failed, and which run may go ahead.
A job key names the work (``voice.transcode:42``), so the same work queued twice is one
row, and a claim (``start_job``) lets one worker at a time run it: a second message for
the same key, or a worker that finds another's live lease, runs nothing.
"""

import json

from .. import clock
from .db import marks, transaction

#: Job states; ``ACTIVE`` ones are still going to run.
STATES = ("queued", "running", "retrying", "done", "failed")
ACTIVE = ("queued", "running", "retrying")
#: Done jobs are kept this long for ``wx jobs`` (failed ones until they are run again).
KEEP_DONE = 7 * 86400


def _row(row):
    if row is not None:
        row["args"] = json.loads(row["args"] or "{}")
    return row


def get_job(db, key):
    """Return the job row (``args`` decoded), or None."""
    return _row(db.one("SELECT * FROM jobs WHERE key = :key", {"key": key}))


def queue_job(db, key, name, args, max_attempts, run_at, again=True, now=None):
    """Record a job as queued; return True when the caller must put it on the queue.

    An active job with this key is left as it is (False): the work is already on its way.
    A finished one is queued afresh when ``again`` (its tries start over), else left done.
    """
    now = now or clock.now()
    values = {
        "key": key,
        "name": name,
        "args": json.dumps(args, sort_keys=True),
        "max": max_attempts,
        "run_at": run_at,
        "now": now,
    }
    with transaction(db):
        row = db.one(f"SELECT state FROM jobs WHERE key = :key{db.for_update}", {"key": key})
        if row is None:
            inserted = db.execute(
                "INSERT INTO jobs (key, name, args, state, attempts, max_attempts, run_at, "
                "created_at, updated_at) VALUES (:key, :name, :args, 'queued', 0, :max, "
                ":run_at, :now, :now) ON CONFLICT (key) DO NOTHING",
                values,
            )
            return inserted == 1
        if row["state"] in ACTIVE or not again:
            return False
        db.execute(
            "UPDATE jobs SET name = :name, args = :args, state = 'queued', attempts = 0, "
            "max_attempts = :max, last_error = NULL, run_at = :run_at, lease_until = NULL, "
            "updated_at = :now WHERE key = :key",
            values,
        )
    return True


def start_job(db, key, lease_until, now=None, periodic=False):
    """Claim a job for one run (state ``running`` until ``lease_until``); return its row.

    None: nothing to run — the job is done, unknown, or running elsewhere under a live
    lease. A lease that ran out means its worker died: the job is claimed again. A
    periodic job's row is made on its first run; its ``attempts`` count the failures in a
    row (a success starts them over).
    """
    now = now or clock.now()
    with transaction(db):
        row = db.one(f"SELECT * FROM jobs WHERE key = :key{db.for_update}", {"key": key})
        if row is None:
            return None
        running_elsewhere = row["state"] == "running" and (row["lease_until"] or 0) > now
        if running_elsewhere:
            return None
        if row["state"] == "done" and not periodic:
            return None
        if row["state"] == "failed" and not periodic:
            return None
        attempts = 1 if periodic and row["state"] == "done" else row["attempts"] + 1
        db.execute(
            "UPDATE jobs SET state = 'running', attempts = :attempts, lease_until = :lease, "
            "updated_at = :now WHERE key = :key",
            {"attempts": attempts, "lease": lease_until, "now": now, "key": key},
        )
    return get_job(db, key)


def ensure_periodic(db, key, name, max_attempts, now=None):
    """Make the row of a periodic job if it has none (its runs then go through start_job)."""
    now = now or clock.now()
    with transaction(db):
        db.execute(
            "INSERT INTO jobs (key, name, args, state, attempts, max_attempts, "
            "created_at, updated_at) VALUES (:key, :name, '{}', 'done', 0, :max, :now, :now) "
            "ON CONFLICT (key) DO NOTHING",
            {"key": key, "name": name, "max": max_attempts, "now": now},
        )


def finish_job(db, key, state, error=None, run_at=None, result=None, now=None):
    """Record how a run ended: ``done``, ``retrying`` (due at ``run_at``) or ``failed``."""
    if state not in ("done", "retrying", "failed"):
        raise ValueError(state)
    with transaction(db):
        db.execute(
            "UPDATE jobs SET state = :state, last_error = :error, result = :result, "
            "run_at = :run_at, lease_until = NULL, updated_at = :now WHERE key = :key",
            {
                "state": state,
                "error": None if error is None else str(error)[:500],
                "result": None if result is None else str(result)[:500],
                "run_at": run_at,
                "now": now or clock.now(),
                "key": key,
            },
        )


def list_jobs(db, states=None, limit=50):
    """Return jobs (``args`` decoded), the most recently changed first."""
    where, params = "", {"limit": limit}
    if states:
        names, params = marks("s", states)
        params["limit"] = limit
        where = f"WHERE state IN ({names}) "
    rows = db.query(f"SELECT * FROM jobs {where}ORDER BY updated_at DESC LIMIT :limit", params)
    return [_row(r) for r in rows]


def job_counts(db):
    """Return ``{state: jobs}`` for every state."""
    counts = dict.fromkeys(STATES, 0)
    for row in db.query("SELECT state, COUNT(*) AS n FROM jobs GROUP BY state"):
        counts[row["state"]] = row["n"]
    return counts


def job_states(db, keys):
    """Return ``{key: state}`` for those of ``keys`` that have a row."""
    if not keys:
        return {}
    names, params = marks("k", keys)
    rows = db.query(f"SELECT key, state FROM jobs WHERE key IN ({names})", params)
    return {r["key"]: r["state"] for r in rows}


def stale_jobs(db, before, now, limit=50):
    """Return jobs the queue seems to have lost: a running one whose lease ran out (its
    worker died), or a queued/retrying one still waiting since before ``before``."""
    rows = db.query(
        "SELECT * FROM jobs WHERE (state = 'running' AND lease_until < :now) "
        "OR (state IN ('queued', 'retrying') AND COALESCE(run_at, updated_at) < :before "
        "AND updated_at < :before) ORDER BY updated_at LIMIT :limit",
        {"now": now, "before": before, "limit": limit},
    )
    return [_row(r) for r in rows]


def touch_job(db, key, now=None):
    """Note that a waiting job was put on the queue again (``stale_jobs`` waits anew)."""
    with transaction(db):
        db.execute(
            "UPDATE jobs SET updated_at = :now WHERE key = :key",
            {"now": now or clock.now(), "key": key},
        )


def oldest_waiting(db, now=None):
    """Return the seconds the longest-waiting due job has waited (0 when none waits)."""
    now = now or clock.now()
    since = db.scalar(
        "SELECT MIN(COALESCE(run_at, created_at)) FROM jobs WHERE state = 'queued' "
        "AND COALESCE(run_at, created_at) <= :now",
        {"now": now},
    )
    return 0 if since is None else now - since
