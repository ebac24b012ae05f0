"""Serve the emulator on a real port from a daemon thread (tests, the site's CLI)."""

import logging
import threading
from dataclasses import dataclass

from werkzeug.serving import WSGIRequestHandler, make_server


def _without_query(text):
    start = text.find("?")
    if start < 0:
        return text
    end = text.rfind(" HTTP/")
    return text[:start] + (text[end:] if end > start else "")


class NoQueryStrings(logging.Filter):
    """Drop query strings from werkzeug's access lines: they carry secrets, codes and tokens."""

    def filter(self, record):
        if isinstance(record.args, tuple):
            record.args = tuple(
                _without_query(arg) if isinstance(arg, str) else arg for arg in record.args
            )
        return True


_NO_QUERY_STRINGS = NoQueryStrings()


def hide_query_strings():
    """Make werkzeug's access lines show paths only (idempotent, process-wide)."""
    # werkzeug logs access lines on this logger whoever serves the app (run_simple, start).
    logging.getLogger("werkzeug").addFilter(_NO_QUERY_STRINGS)


class _QuietHandler(WSGIRequestHandler):
    """Request handler that doesn't log every request."""

    def log_request(self, code="-", size="-"):
        pass


@dataclass
class Running:
    """A running emulator server."""

    base_url: str
    port: int
    server: object
    thread: threading.Thread

    @property
    def app(self):
        """Return the WSGI app being served."""
        return self.server.app

    def shutdown(self):
        """Stop serving and release the port."""
        self.server.shutdown()
        self.thread.join(timeout=5)
        self.server.server_close()


def start(app=None, host="127.0.0.1", port=0, quiet=False):
    """Serve *app* (default: a new emulator) threaded on host:port (0 = any free port)."""
    if app is None:
        from . import create_emulator

        app = create_emulator()
    handler = _QuietHandler if quiet else None
    server = make_server(host, port, app, threaded=True, request_handler=handler)
    port = server.server_port
    # A short poll interval so shutdown() in test teardown returns quickly.
    thread = threading.Thread(
        target=server.serve_forever,
        kwargs={"poll_interval": 0.05},
        name=f"wxemu-{port}",
        daemon=True,
    )
    thread.start()
    shown_host = f"[{host}]" if ":" in host else host
    return Running(f"http://{shown_host}:{port}", port, server, thread)
