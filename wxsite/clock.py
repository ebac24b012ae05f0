"""The site's one "now": every expiry, lease, schedule and stored timestamp reads it.

Inside an app context it is the app's ``WXSITE_CLOCK`` (a callable a test passes to
``create_app`` to move time; never read from the environment), elsewhere ``time.time``, so
the store's functions still run without Flask. The WeChat clients are framework-free: they
are handed ``source(app)`` instead. Durations (deadlines, timeouts) use ``time.monotonic``,
which no test moves.
"""

import time

from flask import current_app, has_app_context

#: The config key of the app's clock (a test hook, not a setting).
KEY = "WXSITE_CLOCK"


def source(app):
    """Return ``app``'s clock callable (``time.time`` unless a test set one)."""
    return app.config.get(KEY) or time.time


def now():
    """Return seconds since the epoch by the current app's clock (``time.time`` outside one)."""
    if has_app_context():
        return source(current_app)()
    return time.time()
