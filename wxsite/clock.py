"""The site's one "now": every expiry, lease, schedule and stored timestamp reads it.

Inside an app context it is the app's ``WXSITE_CLOCK`` (a callable a test passes to
``create_app`` to move time; never read from the environment), elsewhere ``time.time``, so
the store's functions still run without Flask. The WeChat clients are framework-free: they
are handed ``source(app)`` instead. Durations (deadlines, timeouts) use ``time.monotonic``,
which no test moves.
"""

import time
from datetime import datetime, timedelta, timezone

from flask import current_app, has_app_context

#: The config key of the app's clock (a test hook, not a setting).
KEY = "WXSITE_CLOCK"
#: The zone people read times in: China's one zone, no daylight saving, so a fixed offset
#: (no tz database needed), whatever zone the server runs in (UTC, usually).
CHINA = timezone(timedelta(hours=8), "北京时间")


def source(app):
    """Return ``app``'s clock callable (``time.time`` unless a test set one)."""
    return app.config.get(KEY) or time.time


def now():
    """Return seconds since the epoch by the current app's clock (``time.time`` outside one)."""
    if has_app_context():
        return source(current_app)()
    return time.time()


def china_time(timestamp, fmt="%Y-%m-%d %H:%M"):
    """Format a stored timestamp the way the site's readers read it: in China time."""
    return datetime.fromtimestamp(timestamp or 0, CHINA).strftime(fmt)
