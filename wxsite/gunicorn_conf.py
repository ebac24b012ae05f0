"""gunicorn settings for production: ``gunicorn -c python:wxsite.gunicorn_conf wsgi:app``.

Every value can be overridden on the command line or with GUNICORN_CMD_ARGS.
"""

import multiprocessing
import os

# Not "config": gunicorn reads every module-level name here as one of its settings.
from wxsite.config import server as _server_settings

# The names are in wxsite/config.py's catalogue (SERVER_SETTINGS); a bad value stops here.
_server = _server_settings(os.environ, multiprocessing.cpu_count())
bind = _server["bind"]

# Workers from the CPU count (the classic 2n+1, capped), each with a few threads: most time
# goes to waiting on WeChat or SQLite, and threads make a slow WeChat call cost one
# thread, not one process.
workers = _server["workers"]
worker_class = "gthread"
threads = _server["threads"]

# Our WeChat calls stop well before this (WXSITE_DEADLINE, 15 s): a worker that hits the
# timeout is stuck, not slow.
timeout = 30
graceful_timeout = 20
keepalive = 5
max_requests = 5000
max_requests_jitter = 500

# No preload: each worker builds its own app, so no SQLite connection, requests.Session or
# credential cache crosses a fork; migrations are safe when workers start at once.
preload_app = False

# gunicorn's access log would print query strings (?code=…&state=…); the app logs one line
# per request itself (path, status, time, request id, openid hash).
accesslog = None
errorlog = "-"
loglevel = (os.environ.get("WXSITE_LOG_LEVEL") or "info").lower()

# WX_PROXY_HOPS (ProxyFix) is the only authority on X-Forwarded-*: gunicorn must not also
# rewrite the scheme from headers a client could send.
forwarded_allow_ips = ""
proxy_allow_ips = ""

# gunicorn 25.1+ opens a control socket for `gunicornc` at $XDG_RUNTIME_DIR/gunicorn.ctl or
# ~/.gunicorn/gunicorn.ctl: one path per user, so a second instance (the tests start
# several, a host may run staging beside production) takes over the first one's socket.
# Nothing here uses it; older gunicorn ignores the unknown name.
control_socket_disable = True

# The site's modules are imported here, once, in the master: every worker gunicorn forks (at
# start, after a crash, and every max_requests) inherits them instead of importing them
# again (0.72 s of CPU each time; now 0.13 s). Only modules: each worker builds its own app.
import wxsite.app as _site_modules  # noqa: E402,F401
