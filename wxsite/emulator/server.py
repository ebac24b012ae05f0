"""Serve the emulator on a real port from a daemon thread (tests, the site's CLI)."""

import threading
from dataclasses import dataclass

from werkzeug.serving import WSGIRequestHandler, make_server


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
