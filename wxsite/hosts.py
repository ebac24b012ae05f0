"""What every host of one site must agree on, recorded in the database they share.

Each process records its host's facts at start-up (one row per host: a name, a salted
fingerprint of SECRET_KEY, where uploads, credentials and jobs live, the AppID); ``wx
doctor`` on any host compares its own with those of the other hosts seen lately. A host
on another database never shows up: doctor's database line names the server and database,
to compare across hosts by eye.
"""

import hashlib
import logging
import os
import socket
from urllib.parse import urlsplit

from . import clock, jobs, store
from .media import blobs

log = logging.getLogger("wxsite.hosts")

#: Hosts that started within this many seconds count as part of the deployment.
RECENT = 7 * 86400

#: How far two hosts' clocks may disagree. Leases (the credential fetch: WXSITE_DEADLINE +
#: 5 s) and expiries are written by one host's clock and read by another's, so a host far
#: ahead takes a lease that is still held.
CLOCK_SKEW = 5.0


def fingerprint(text):
    """A short salted hash: equal texts match, the text itself cannot be read back."""
    return hashlib.sha256(b"wxsite-host-check\0" + text.encode()).hexdigest()[:12]


def host_name(app):
    """This host: the machine, and the instance folder (several sites on one machine)."""
    return f"{socket.gethostname()}:{app.instance_path}"


def _where(url):
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}:{parts.port or ''}{parts.path}"


def facts(app):
    """Return this host's facts (never a secret: fingerprints and locations only)."""
    cfg = app.config
    uploads = app.extensions[blobs.EXTENSION].describe()
    if uploads["backend"] == "local":
        uploads_at = f"folder {uploads['location']}"
    else:
        uploads_at = f"{uploads['location']} at {uploads.get('endpoint') or 'default endpoint'}"
    redis = cfg.get("WXSITE_REDIS_URL")
    return {
        "secret_key": fingerprint(cfg["SECRET_KEY"]),
        "appid": cfg["WX_APPID"] or "emulator",
        "uploads": uploads_at,
        "uploads_shared": uploads["backend"] != "local",
        "credentials": f"Redis {_where(redis)}" if redis else "this database",
        "jobs": jobs.get(app).describe(),
        "jobs_shared": bool(redis),
        "pid": os.getpid(),
    }


def clock_offset(app, db):
    """Return how many seconds ``app``'s clock is ahead of the database server's.

    The server's clock is only the common yardstick: nothing else reads it."""
    now = clock.source(app)
    before = now()
    server = store.server_time(db)
    return (before + now()) / 2 - server


def record(app):
    """Note this host in the shared database (at start-up; a failure only logs)."""
    try:
        with store.engine(app).connection() as db:
            store.note_host(
                db, host_name(app), dict(facts(app), clock_offset=round(clock_offset(app, db), 3))
            )
    except store.Error as exc:
        log.warning("could not record this host for wx doctor: %s", exc)


def _clocks(mine, others):
    """Each host's clock against the database server's: this one now, the others as of their
    start (hosts started before the offset was recorded are left out)."""
    offsets = {"this host": mine}
    offsets.update((n, f["clock_offset"]) for n, f in others.items() if "clock_offset" in f)
    spread = max(offsets.values()) - min(offsets.values())
    said = ", ".join(f"{name} {value:+.1f} s" for name, value in sorted(offsets.items()))
    if spread > CLOCK_SKEW:
        return (
            False,
            "clocks",
            f"hosts disagree by {spread:.0f} s ({said} against the database server): leases "
            "and expiries written on one host are read on another; keep NTP on every host",
        )
    return True, "clocks", f"within {spread:.1f} s of each other ({said})"


def compare(app, now=None):
    """Return ``(ok, label, detail)`` findings: this host against the others seen lately.

    ``ok`` is False for a disagreement that breaks the site, None for a reminder.
    """
    me = host_name(app)
    mine = facts(app)
    with store.engine(app).connection() as db:
        seen = store.recent_hosts(db, (now or clock.now()) - RECENT)
        offset = clock_offset(app, db)
    others = {name: f for name, f in seen.items() if name != me}
    names = ", ".join(sorted(others)) or "none"
    found = [(True, "hosts", f"{len(others)} other host(s) on this database: {names}")]
    for key, label, why in (
        ("secret_key", "SECRET_KEY", "its sessions and CSRF tokens are refused here"),
        ("appid", "WX_APPID", "its logins belong to another Official Account"),
        ("uploads", "uploads", "photos stored there are missing here"),
        ("credentials", "credentials", "each side fetches its own token and ticket"),
        ("jobs", "job queue", "jobs queued on one side never run on the other"),
    ):
        differ = sorted(name for name, f in others.items() if f.get(key) != mine[key])
        if differ:
            found.append((False, f"same {label}", f"{', '.join(differ)} differ: {why}"))
        elif others:
            found.append((True, f"same {label}", f"all {len(others) + 1} hosts agree"))
    if others:
        found.append(_clocks(offset, others))
    if others and not mine["uploads_shared"]:
        found.append(
            (False, "uploads shared", "a local folder on several hosts: use WXSITE_UPLOADS=s3://…")
        )
    if others and not mine["jobs_shared"]:
        found.append((False, "jobs shared", "a queue file on several hosts: set WXSITE_REDIS_URL"))
    found.append(
        (
            None,
            "IP whitelist",
            "every host's outbound IP must be in the MP console (设置与开发 → 基本配置 → "
            "IP白名单), or WeChat answers errcode 40164 on that host",
        )
    )
    return found
