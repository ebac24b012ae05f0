"""``flask wx worker`` (run jobs) and ``flask wx jobs`` (list them, retry a failed one)."""

import time

import click
from flask import current_app
from flask.cli import with_appcontext

from .. import store
from ..logs import quiet
from ..store.jobs import STATES
from . import get, tasks


@click.command("worker")
@click.option(
    "--workers", default=None, type=int, help="Job threads (default WXSITE_JOBS_WORKERS)."
)
@click.option(
    "--no-periodic", is_flag=True, help="Run queued jobs only; leave the periodic ones to others."
)
@with_appcontext
def worker_command(workers, no_periodic):
    """Run background jobs in the foreground until SIGINT/SIGTERM.

    For hosts that set WXSITE_JOBS_CONSUMER=off (the site then only queues jobs). With
    WXSITE_REDIS_URL every host's worker takes jobs from the one shared queue.

    Example: flask --app wsgi wx worker --workers 4
    """
    import logging

    app = current_app._get_current_object()
    jobs = get(app)
    count = workers or app.config["WXSITE_JOBS_WORKERS"] or 1
    logging.getLogger("huey").setLevel(logging.INFO)
    click.echo(f"wxsite worker: {count} threads on {jobs.describe()}", err=True)
    click.echo("jobs: " + ", ".join(sorted(tasks.JOBS)), err=True)
    jobs.worker(count, periodic=not no_periodic).run()


def _when(ts):
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts)) if ts else "-"


@click.group("jobs", invoke_without_command=True)
@click.option(
    "--state",
    "states",
    multiple=True,
    type=click.Choice(STATES),
    help="Only jobs in this state (repeatable).",
)
@click.option("--limit", default=50, show_default=True, type=int)
@click.pass_context
@with_appcontext
@quiet
def jobs_group(ctx, states, limit):
    """List background jobs: queued, running, retrying, done and failed, with their tries
    and last error.

    Example: flask --app wsgi wx jobs --state failed
    """
    if ctx.invoked_subcommand is not None:
        return
    jobs = get()
    db = store.get_db()
    pending = jobs.pending()
    waiting = "not answering" if pending is None else f"{pending} messages waiting"
    click.echo(f"queue: {jobs.describe()}; {waiting}")
    counts = store.job_counts(db)
    click.echo(" · ".join(f"{state} {n}" for state, n in counts.items()))
    rows = store.list_jobs(db, list(states) or None, limit)
    if not rows:
        click.echo("no jobs")
        return
    width = max(len(r["key"]) for r in rows)
    click.echo(f"{'STATE':<9} {'TRIES':<6} {'KEY':<{width}}  {'UPDATED':<19}  LAST ERROR / RESULT")
    for row in rows:
        tries = f"{row['attempts']}/{row['max_attempts']}"
        note = row["last_error"] if row["state"] in ("retrying", "failed") else row["result"]
        if row["state"] in ("queued", "retrying") and row["run_at"]:
            note = f"due {_when(row['run_at'])}" + (f"; {note}" if note else "")
        click.echo(
            f"{row['state']:<9} {tries:<6} {row['key']:<{width}}  {_when(row['updated_at'])}  "
            f"{note or ''}"
        )


@jobs_group.command("retry")
@click.argument("key")
@with_appcontext
@quiet
def retry_command(key):
    """Queue a failed (or done) job again, its tries starting over.

    Example: flask --app wsgi wx jobs retry refund.retry:RF20261201120000abcdefgh
    """
    row = store.get_job(store.get_db(), key)
    if row is None:
        raise click.ClickException(f"no job {key}")
    if row["name"] not in tasks.JOBS:
        raise click.ClickException(f"{key}: unknown job {row['name']}")
    get().enqueue(row["name"], row["args"], key)
    click.echo(f"queued {key} again")
