"""What gunicorn and ``flask --app wsgi`` load."""

import sys

from wxsite import create_app
from wxsite.config import ConfigError

try:
    app = create_app()
except ConfigError as exc:
    # One clear line, no traceback; 3 is gunicorn's "worker failed to boot": no respawn loop.
    print(f"wxsite: configuration error: {exc}", file=sys.stderr)
    sys.exit(3)
