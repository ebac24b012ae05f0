"""A tiny werkzeug app that receives the emulator's pushes and answers as it is told."""

import threading
import time
from collections import deque
from dataclasses import dataclass, field
from urllib.parse import parse_qs

from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response


@dataclass
class Received:
    """One request the receiver got."""

    method: str
    args: dict
    body: bytes
    query: str


@dataclass
class Answer:
    """What the receiver answers one request with: after *delay* wall-clock seconds."""

    body: str = "success"
    status: int = 200
    delay: float = 0.0
    content_type: str = "text/plain"


@dataclass
class Receiver:
    """Where pushes land: ``answers`` queued first, then ``default`` (``echo`` for URL checks)."""

    server: object = None
    thread: object = None
    received: list = field(default_factory=list)
    answers: deque = field(default_factory=deque)
    default: Answer = field(default_factory=Answer)
    echo: bool = True

    @property
    def url(self):
        """Return the push URL of this receiver."""
        return f"http://127.0.0.1:{self.server.server_port}/wechat/push"

    def __call__(self, environ, start_response):
        request = Request(environ)
        query = environ.get("QUERY_STRING", "")
        args = {k: v[0] for k, v in parse_qs(query).items()}
        self.received.append(Received(request.method, args, request.get_data(), query))
        if request.method == "GET" and self.echo:
            answer = Answer(args.get("echostr", ""))
        else:
            answer = self.answers.popleft() if self.answers else self.default
        if answer.delay:
            time.sleep(answer.delay)
        response = Response(answer.body, answer.status, content_type=answer.content_type)
        return response(environ, start_response)

    def posts(self):
        """Return the POSTs received, oldest first."""
        return [r for r in self.received if r.method == "POST"]

    def start(self):
        """Serve on a free loopback port from a daemon thread."""
        self.server = make_server("127.0.0.1", 0, self, threaded=True)
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()
        return self

    def stop(self):
        """Stop serving."""
        self.server.shutdown()
        self.thread.join(timeout=5)
        self.server.server_close()
