"""Helpers of the job tests: a faulty WeChat Pay front, waiting on job rows, a worker process."""

import json
import os
import subprocess
import sys
import threading
import time

import requests
from werkzeug.serving import make_server

from support import ROOT, SECRET_KEY
from wxsite import store
from wxsite.wechat import protocol

_HOP = {"content-length", "transfer-encoding", "connection", "content-encoding", "keep-alive"}


class PayFront:
    """WeChat Pay as the site meets it: the emulator, behind a front that can break refunds.

    ``refund_modes`` is consumed one per refund call (then ``pass``):
    ``fail``  — answer 502 without reaching WeChat Pay (nothing happened there);
    ``lose``  — WeChat Pay accepts the refund, the answer is lost (502);
    ``stall`` — WeChat Pay accepts it, the answer comes ``stall`` seconds later.
    ``refund_numbers`` records the out_refund_no of every refund call.
    """

    def __init__(self, emulator_url, stall=8.0):
        self.emulator_url = emulator_url
        self.stall = stall
        self.refund_modes = []
        self.always = None  # a mode for every call (after refund_modes)
        self.refund_numbers = []
        self.lock = threading.Lock()
        self.server = make_server("127.0.0.1", 0, self, threaded=True)
        self.base_url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def _mode(self):
        with self.lock:
            if self.refund_modes:
                return self.refund_modes.pop(0)
            return self.always or "pass"

    def __call__(self, environ, start_response):
        query = environ.get("QUERY_STRING", "")
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        mode = "pass"
        if environ["PATH_INFO"] == protocol.PAY_REFUNDS and environ["REQUEST_METHOD"] == "POST":
            mode = self._mode()
            with self.lock:
                self.refund_numbers.append(json.loads(body or b"{}").get("out_refund_no"))
        if mode == "fail":
            start_response("502 Bad Gateway", [("Content-Type", "text/html")])
            return [b"<html><body>502 Bad Gateway</body></html>"]
        headers = {
            k[5:].replace("_", "-").title(): v
            for k, v in environ.items()
            if k.startswith("HTTP_") and k[5:].lower() not in ("host", "connection")
        }
        if environ.get("CONTENT_TYPE"):
            headers["Content-Type"] = environ["CONTENT_TYPE"]
        upstream = requests.request(
            environ["REQUEST_METHOD"],
            self.emulator_url + environ["PATH_INFO"] + ("?" + query if query else ""),
            data=body or None,
            headers=headers,
            timeout=10,
        )
        if mode == "lose":
            start_response("502 Bad Gateway", [("Content-Type", "text/html")])
            return [b"<html><body>502 Bad Gateway</body></html>"]
        if mode == "stall":
            time.sleep(self.stall)
        out = [(k, v) for k, v in upstream.headers.items() if k.lower() not in _HOP]
        start_response(f"{upstream.status_code} {upstream.reason}", out)
        return [upstream.content]

    def shutdown(self):
        self.server.shutdown()
        self.thread.join()


def wait_for(check, timeout=30.0, what="condition"):
    """Poll ``check()`` until it returns something true; return that (bounded wait)."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def job_row(app, key):
    with app.app_context():
        return store.get_job(store.get_db(), key)


def job_in(app, key, *states):
    """Return the job's row once it is in one of ``states`` (else None)."""
    row = job_row(app, key)
    return row if row and row["state"] in states else None


def refund_row(app, no):
    with app.app_context():
        return store.get_refund(store.get_db(), no)


class Worker:
    """``flask --app wsgi wx worker`` as its own process, with a site's settings."""

    def __init__(self, env, log_path):
        self.log_path = log_path
        self.log = open(log_path, "wb")
        full = {
            "PATH": os.environ.get("PATH", ""),
            "HOME": os.environ.get("HOME", "/tmp"),
            "WXSITE_DOTENV": os.path.join(os.path.dirname(log_path), "no.env"),
            "SECRET_KEY": SECRET_KEY,
            "WXSITE_INSTANCE": os.path.join(os.path.dirname(log_path), "instance"),
            **env,
        }
        flask = os.path.join(os.path.dirname(sys.executable), "flask")
        self.process = subprocess.Popen(
            [flask, "--app", "wsgi", "wx", "worker", "--workers", "2"],
            cwd=ROOT,
            env=full,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    def output(self):
        self.log.flush()
        with open(self.log_path, encoding="utf-8", errors="replace") as f:
            return f.read()

    def kill(self):
        self.process.kill()
        self.process.wait(10)

    def stop(self):
        if self.process.poll() is None:
            self.process.send_signal(2)  # SIGINT: finish the jobs running now, then exit
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()
        self.log.close()
        return self.process.returncode


def paid_order(phone, live, emu, product="tea"):
    """Buy ``product`` on the site and pay for it at the emulator; return out_trade_no."""
    import re

    from support import csrf_token

    page = phone.get(live.url("/pay/"))
    response = phone.post(
        live.url("/pay/orders"), data={"csrf_token": csrf_token(page.text), "product": product}
    )
    assert response.status_code == 200, response.text[:300]
    params = json.loads(re.search(r'id="pay-params">(.*?)</script>', response.text).group(1))
    answer = requests.post(emu.base_url + "/_emu/pay/confirm", json={**params, "notify": True})
    assert answer.json()["ok"], answer.text
    return response.url.rstrip("/").split("/")[-1]


def emulator_refunds(emu):
    """Every refund number WeChat Pay (the emulator) has accepted."""
    return [r["out_refund_no"] for r in requests.get(emu.base_url + "/_emu/pay/refunds").json()]
