"""The queue: a huey instance built from the app's settings, and the consumers that run it.

Why huey: one small library (no broker to run for one host) with the same API over an
SQLite storage (``SqliteHuey``, one host, the embedded default) and a Redis storage
(``RedisHuey``, several hosts sharing one queue); delayed tasks (our backoff), periodic
tasks (reconciling, the sweep) and a consumer that runs in threads, so it can live
inside the site's own process as well as in ``wx worker``. RQ needs Redis even for one
host and has no periodic tasks of its own; Dramatiq needs RabbitMQ or Redis and more
moving parts.

huey alone delivers a message at most once (a worker killed mid-task loses it), so the
truth about a job is its row in the site's database (``wxsite.store.jobs``): state,
tries, last error and a lease; ``jobs.recover`` puts back what the queue lost.

The queue file is its own SQLite file (never the site's database): huey takes exclusive
locks on it at every dequeue, which the site's database must not suffer.
"""

import logging
import os
import threading

from huey import RedisHuey, SqliteHuey
from huey.consumer import Consumer

log = logging.getLogger("wxsite.jobs")


def queue_location(app):
    """Return ``("redis", url)`` or ``("sqlite", path)`` for the app's queue."""
    cfg = app.config
    if cfg.get("WXSITE_REDIS_URL"):
        return "redis", cfg["WXSITE_REDIS_URL"]
    path = cfg.get("WXSITE_JOBS_FILE")
    if not path:
        database = cfg["WXSITE_DATABASE"]
        folder = (
            app.instance_path if "://" in database else os.path.dirname(os.path.abspath(database))
        )
        path = os.path.join(folder, "jobs.sqlite3")
    return "sqlite", path


def build_huey(app):
    """Return the huey instance of ``app``'s settings (nothing connects yet)."""
    kind, where = queue_location(app)
    name = app.config["WXSITE_JOBS_QUEUE"]
    # results=False: job outcomes live in the jobs table, not in huey's result store.
    if kind == "redis":
        # Short socket timeouts (RELIABILITY 45/64): a stalled Redis costs seconds, and
        # blocking pops wake every second to see the stop flag.
        from redis import ConnectionPool

        pool = ConnectionPool.from_url(where, socket_timeout=5, socket_connect_timeout=3)
        return RedisHuey(name, connection_pool=pool, results=False, blocking=True, read_timeout=1)
    os.makedirs(os.path.dirname(os.path.abspath(where)), exist_ok=True)
    return SqliteHuey(name, filename=where, results=False, timeout=5)


class EmbeddedConsumer(Consumer):
    """huey's consumer, started from inside the site: its threads only, no signal handlers.

    gunicorn (and ``flask run``) own the process's signals; the consumer's threads are
    daemons, and a job cut short by the process ending is claimed again when its lease
    runs out.
    """

    def _set_signal_handlers(self):
        pass


def make_consumer(huey, workers, periodic=True, embedded=False, max_delay=1.0):
    """Return a consumer of ``huey`` with ``workers`` threads (not started)."""
    cls = EmbeddedConsumer if embedded else Consumer
    # max_delay: an idle worker polls the SQLite queue at most this far apart (Redis
    # storage blocks on the queue instead).
    return cls(
        huey,
        workers=workers,
        periodic=periodic,
        worker_type="thread",
        initial_delay=0.1,
        backoff=1.5,
        max_delay=max_delay,
        check_worker_health=True,
        shutdown_timeout=10,
    )


class Running:
    """The embedded consumer of one process (restarted after a fork)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.consumer = None
        self.pid = None

    def start(self, huey, workers, periodic, max_delay):
        with self.lock:
            if self.consumer is not None and self.pid == os.getpid():
                return False
            self.consumer = make_consumer(
                huey, workers, periodic, embedded=True, max_delay=max_delay
            )
            self.pid = os.getpid()
            self.consumer.start()
            log.info("background jobs: %d threads in this process (pid %d)", workers, self.pid)
            return True

    def stop(self):
        with self.lock:
            consumer, self.consumer = self.consumer, None
            if consumer is not None and self.pid == os.getpid():
                consumer.stop(graceful=True)
            return consumer is not None

    @property
    def alive(self):
        return self.consumer is not None and self.pid == os.getpid()
