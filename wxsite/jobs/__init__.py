"""Background jobs: work taken out of requests, run by a consumer, recorded in the store.

- The queue is huey (see ``queue.py`` for why): ``SqliteHuey`` at ``instance/jobs.sqlite3``
  by default (one host), ``RedisHuey`` on ``WXSITE_REDIS_URL`` when it is set (several
  hosts share one queue, and any host's worker runs any host's job).
- The consumer runs in threads inside each site process by default
  (``WXSITE_JOBS_CONSUMER=thread``), so ``make run`` needs no extra server; set it to
  ``off`` on hosts where ``flask --app wsgi wx worker`` runs the jobs instead.
- Every job has a row in the site's database (``wxsite.store.jobs``) with its state,
  tries and last error: ``wx jobs`` lists them, ``wx doctor`` shows the failed ones.
- A failed run is retried after ``WXSITE_JOBS_RETRY_BASE`` seconds, doubled each time up
  to ``WXSITE_JOBS_RETRY_MAX``; after ``WXSITE_JOBS_ATTEMPTS`` tries it is ``failed`` and
  logged with its reason. The jobs themselves are in ``tasks.py``.
"""

import atexit
import logging
import re
import weakref

import click
from huey.exceptions import RetryTask

from .. import clock, store
from . import queue, tasks

log = logging.getLogger("wxsite.jobs")
EXTENSION = "wxsite.jobs"
#: Words that must never reach a job's recorded error or the log (URLs with tokens …).
_SECRETS = re.compile(
    r"(access_token|secret|ticket|code|key|password|token)=[^&\s'\"]+", re.IGNORECASE
)
_running = weakref.WeakSet()


def backoff(cfg, attempts):
    """Seconds before try ``attempts + 1``: the base, doubled per try, at most the maximum."""
    base, most = cfg["WXSITE_JOBS_RETRY_BASE"], cfg["WXSITE_JOBS_RETRY_MAX"]
    return min(base * 2 ** min(max(attempts - 1, 0), 30), most)


def reason(exc):
    """Return why a job failed, fit for the log and ``wx jobs`` (no tokens, bounded)."""
    text = str(exc) or type(exc).__name__
    if not isinstance(exc, (tasks.Retry, tasks.Permanent)):
        text = f"{type(exc).__name__}: {text}"
    return _SECRETS.sub(r"\1=…", text)[:300]


class Jobs:
    """One app's queue: enqueueing, running a job's body, and its embedded consumer."""

    def __init__(self, app):
        self.app = app
        self.huey = queue.build_huey(app)
        self.location = queue.queue_location(app)
        self.running = queue.Running()
        self.tasks = {}
        for job in tasks.JOBS.values():
            self.tasks[job.name] = self._register(job)

    def _register(self, job):
        app_ref = weakref.ref(self.app)

        def run(key=None):
            app = app_ref()
            if app is None:
                return None
            return app.extensions[EXTENSION].run(job, key or job.name)

        run.__name__ = job.name.replace(".", "_")
        run.__module__ = "wxsite.jobs"
        if job.every is not None:
            return self.huey.periodic_task(job.every, name=job.name)(run)
        return self.huey.task(name=job.name)(run)

    # -- queueing --------------------------------------------------------------------

    def enqueue(self, name, args=None, key=None, delay=0, again=True):
        """Queue job ``name`` (its row first, then the message); return the job key.

        Never raises for a queue that does not answer: the row stays ``queued`` and
        ``jobs.recover`` puts it on the queue later. ``again``: a finished job with this
        key is run afresh (else it stays done).
        """
        job = tasks.JOBS[name]
        args = args or {}
        key = key or name
        cfg = self.app.config
        now = clock.source(self.app)()  # may be called outside an app context
        with self.app.app_context():
            db = store.get_db()
            if not store.queue_job(
                db, key, job.name, args, cfg["WXSITE_JOBS_ATTEMPTS"], now + delay, again, now
            ):
                return key
        self._send(key, job.name, delay)
        return key

    def _send(self, key, name, delay=0):
        try:
            if delay > 0:
                self.tasks[name].schedule(kwargs={"key": key}, delay=delay)
            else:
                self.tasks[name](key=key)
        except Exception as exc:  # the row is there: jobs.recover sends it again
            log.warning(
                "job %s: the queue did not take it (%s), it will be put back", key, reason(exc)
            )

    def put_back(self, row):
        """Send a job the queue lost again (``jobs.recover``)."""
        if row["name"] not in self.tasks:
            return
        if row["state"] == "running":
            log.warning(
                "job %s: its run stopped without finishing (lease over), put back", row["key"]
            )
        store.touch_job(store.get_db(), row["key"])
        self._send(row["key"], row["name"])

    # -- running ---------------------------------------------------------------------

    def run(self, job, key):
        """Run one job's body in an app context; record the outcome; retry or fail it."""
        with self.app.app_context():
            return self._run(job, key)

    def _run(self, job, key):
        cfg = self.app.config
        db = store.get_db()
        now = clock.now()
        periodic = job.every is not None
        if periodic:
            store.ensure_periodic(db, key, job.name, cfg["WXSITE_JOBS_ATTEMPTS"], now)
        lease = cfg["WXSITE_JOBS_LEASE"]
        row = store.start_job(db, key, now + lease, now, periodic=periodic)
        if row is None:
            return None  # finished already, or running elsewhere: nothing to do twice
        try:
            result = job.func(**row["args"])
        except Exception as exc:
            return self._failed(job, row, exc)
        store.finish_job(db, key, "done", result=result)
        # Periodic ones every minute would drown the log: their rows say how they went.
        log.log(
            logging.DEBUG if periodic else logging.INFO,
            "job %s done (try %d): %s",
            key,
            row["attempts"],
            result,
        )
        return result

    def _failed(self, job, row, exc):
        cfg = self.app.config
        db = store.get_db()
        key, attempts = row["key"], row["attempts"]
        why = reason(exc)
        if attempts >= row["max_attempts"] or isinstance(exc, tasks.Permanent):
            store.finish_job(db, key, "failed", why)
            log.error("job %s failed after %d tries, given up: %s", key, attempts, why)
            return None
        delay = getattr(exc, "delay", None) or backoff(cfg, attempts)
        if job.every is not None:
            # A periodic job's next run is its retry: count the failure, wait for the tick.
            store.finish_job(db, key, "retrying", why)
            log.warning("job %s failed (%d in a row, next run retries): %s", key, attempts, why)
            return None
        store.finish_job(db, key, "retrying", why, run_at=clock.now() + delay)
        log.warning(
            "job %s failed (try %d of %d), retried in %.0f s: %s",
            key,
            attempts,
            row["max_attempts"],
            delay,
            why,
        )
        raise RetryTask(why, delay=delay)

    # -- the consumer ----------------------------------------------------------------

    def start_consumer(self):
        """Start the embedded consumer in this process if it is on and not running yet."""
        cfg = self.app.config
        if cfg["WXSITE_JOBS_CONSUMER"] != "thread" or self.running.alive:
            return False
        started = self.running.start(
            self.huey,
            cfg["WXSITE_JOBS_WORKERS"] or 1,
            cfg.get("JOBS_PERIODIC", True),
            cfg.get("JOBS_POLL_MAX", 1.0),
        )
        if started:
            _running.add(self)
        return started

    def stop_consumer(self):
        """Stop this process's embedded consumer (waits for the jobs running now)."""
        _running.discard(self)
        return self.running.stop()

    def worker(self, workers, periodic=True):
        """Return the consumer ``wx worker`` runs in the foreground (with signal handlers)."""
        return queue.make_consumer(self.huey, workers, periodic, max_delay=1.0)

    def describe(self):
        kind, where = self.location
        if kind == "redis":
            from urllib.parse import urlsplit

            parts = urlsplit(where)  # never the password
            where = f"{parts.scheme}://{parts.hostname or ''}:{parts.port or ''}{parts.path}"
        return f"{kind} {where} (queue {self.app.config['WXSITE_JOBS_QUEUE']})"

    def pending(self):
        """Return how many messages wait on the queue (None if it does not answer)."""
        try:
            return self.huey.pending_count() + self.huey.scheduled_count()
        except Exception:
            return None


def get(app=None):
    """Return the app's ``Jobs``."""
    from flask import current_app

    return (app or current_app).extensions[EXTENSION]


def enqueue(name, args=None, key=None, delay=0, again=True):
    """Queue job ``name`` on the current app's queue; return its key (never raises)."""
    try:
        return get().enqueue(name, args, key, delay, again)
    except store.Error as exc:
        log.warning("job %s not queued: the database did not answer (%s)", key or name, exc)
        return None


def stop_all():
    """Stop every embedded consumer of this process (tests, and the end of the process)."""
    for jobs in list(_running):
        jobs.stop_consumer()


atexit.register(stop_all)


def _in_cli():
    # A flask command (wx jobs, wx doctor, account create …) must not start job threads;
    # `wx worker` runs its own consumer. Requests served by `wx run` run in other threads,
    # outside the click context.
    return click.get_current_context(silent=True) is not None


def init_app(app):
    """Build the app's queue; start the in-process consumer (WXSITE_JOBS_CONSUMER=thread)."""
    logging.getLogger("huey").setLevel(logging.WARNING)
    jobs = app.extensions[EXTENSION] = Jobs(app)
    if app.config["WXSITE_JOBS_CONSUMER"] != "thread":
        return
    if not _in_cli():
        jobs.start_consumer()

    @app.before_request
    def start_jobs():
        # Started here too: after a fork (gunicorn --preload) threads do not follow.
        if not jobs.running.alive and not _in_cli():
            jobs.start_consumer()
