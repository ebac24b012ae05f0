"""Real processes for end-to-end tests and benchmarks: gunicorn, nginx, the emulator.

Everything listens on 127.0.0.1 ports chosen at start; every process is stopped on exit.
"""

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import requests

from support import database

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VENV_BIN = os.path.dirname(sys.executable)
SECRET_KEY = "stack-secret-key-0123456789abcdef0123456789"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(url, timeout=30.0, proc=None, verify=True):
    """Poll ``url`` until it answers (any status below 500)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before {url} answered")
        try:
            if requests.get(url, timeout=1, verify=verify).status_code < 500:
                return
        except requests.RequestException:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer within {timeout}s")


class Process:
    """A child process in its own process group, stopped with SIGTERM then SIGKILL."""

    def __init__(self, args, env=None, log_path=None):
        self.log_path = log_path or tempfile.mktemp(prefix="wxsite-", suffix=".log")
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            args,
            env=env,
            cwd=ROOT,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def log(self):
        with open(self.log_path, encoding="utf-8", errors="replace") as f:
            return f.read()

    def stop(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self._log.close()


class Emulator(Process):
    """The WeChat emulator as its own process."""

    def __init__(self, port=None):
        self.port = port or free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        code = (
            "from werkzeug.serving import run_simple; from wxsite.emulator import create_emulator; "
            f"run_simple('127.0.0.1', {self.port}, create_emulator(), threaded=True)"
        )
        super().__init__([sys.executable, "-c", code])
        wait_for(self.base_url + "/_emu/counters", proc=self.proc)


class Gunicorn(Process):
    """The site under gunicorn with the production config."""

    def __init__(
        self, workdir, emulator_url, workers=4, threads=4, port=None, env=None, app="wsgi:app"
    ):
        self.port = port or free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        full_env = {
            "PATH": os.environ.get("PATH", ""),
            "HOME": os.environ.get("HOME", "/tmp"),
            "SECRET_KEY": SECRET_KEY,
            "WXSITE_DOTENV": os.path.join(workdir, "no.env"),
            "WXSITE_DATABASE": database(workdir),
            "WXSITE_UPLOADS": os.path.join(workdir, "uploads"),
            "WXSITE_EMULATOR_URL": emulator_url,
            "WXSITE_BIND": f"127.0.0.1:{self.port}",
            "WEB_CONCURRENCY": str(workers),
            "WXSITE_THREADS": str(threads),
            **(env or {}),
        }
        self.env = full_env
        args = [
            os.path.join(VENV_BIN, "gunicorn"),
            "-c",
            "python:wxsite.gunicorn_conf",
            "--pythonpath",
            f"{ROOT},{os.path.join(ROOT, 'bench')}",
            app,
        ]
        super().__init__(args, env=full_env, log_path=os.path.join(workdir, "gunicorn.log"))
        wait_for(self.base_url + "/healthz", proc=self.proc)

    def flask(self, *args, input=None):
        """Run ``flask --app wsgi ARGS`` against this site's database."""
        return subprocess.run(
            [os.path.join(VENV_BIN, "flask"), "--app", "wsgi", *args],
            env=self.env,
            cwd=ROOT,
            input=input,
            capture_output=True,
            text=True,
            check=True,
        )


NGINX_CONF = """
worker_processes 1;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    server {{
        listen 127.0.0.1:{port}{tls};
        server_name _;
        client_max_body_size 2m;
        location / {{
            proxy_pass http://127.0.0.1:{upstream};
{forwarding}
        }}
    }}
}}
"""


#: Overwrite, never append: a client's own X-Forwarded-* must not get through.
FORWARDING = """
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-For $remote_addr;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_set_header X-Forwarded-Host $host;
            proxy_set_header X-Forwarded-Port $server_port;"""


def nginx_binary():
    return shutil.which("nginx") or (
        "/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None
    )


def self_signed_cert(directory):
    """Write a certificate for 127.0.0.1 (its own CA) and its key; return (cert, key) paths."""
    cert, key = os.path.join(directory, "tls.crt"), os.path.join(directory, "tls.key")
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            key,
            "-out",
            cert,
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


class Nginx(Process):
    """nginx in front of ``upstream_port``, like a tunnel: with ``tls=True`` it terminates
    https (self-signed) as ngrok or cloudflared would."""

    def __init__(self, workdir, upstream_port, port=None, forward=True, tls=False):
        self.port = port or free_port()
        conf_dir = os.path.join(workdir, "nginx")
        os.makedirs(conf_dir, exist_ok=True)
        self.cert = None
        tls_conf = ""
        if tls:
            self.cert, key = self_signed_cert(conf_dir)
            tls_conf = (
                f" ssl;\n        ssl_certificate {self.cert};\n        ssl_certificate_key {key}"
            )
        self.base_url = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}"
        conf = os.path.join(conf_dir, "nginx.conf")
        with open(conf, "w") as f:
            # forward=False: nginx's default, Host becomes the upstream's — a misconfigured tunnel.
            forwarding = FORWARDING if forward else ""
            f.write(
                NGINX_CONF.format(
                    dir=conf_dir,
                    port=self.port,
                    upstream=upstream_port,
                    forwarding=forwarding,
                    tls=tls_conf,
                )
            )
        super().__init__(
            [nginx_binary(), "-e", os.path.join(conf_dir, "error.log"), "-c", conf, "-p", conf_dir]
        )
        wait_for(self.base_url + "/healthz", proc=self.proc, verify=self.cert or True)


class Stack:
    """The emulator, the site and optionally nginx, with ``url()`` as the browser sees it."""

    def __init__(self, variant, workdir):
        self.variant = variant
        self.emulator = Emulator()
        env = {"WX_PROXY_HOPS": "1"} if variant == "nginx" else {}
        self.site = Gunicorn(str(workdir), self.emulator.base_url, workers=4, env=env)
        # Behind nginx the browser speaks https, as through a tunnel (self-signed certificate).
        self.proxy = Nginx(str(workdir), self.site.port, tls=True) if variant == "nginx" else None
        self.base_url = (self.proxy or self.site).base_url
        self.emu = requests.Session()

    def url(self, path):
        return self.base_url + path

    def emu_get(self, path):
        return self.emu.get(self.emulator.base_url + path).json()

    def emu_post(self, path, json=None):
        response = self.emu.post(self.emulator.base_url + path, json=json)
        response.raise_for_status()
        return response

    def stop(self):
        for part in (self.proxy, self.site, self.emulator):
            if part:
                part.stop()


def phone_context(browser, **options):
    """Open a Playwright context that looks like WeChat's browser on a phone."""
    from support import WECHAT_UA

    return browser.new_context(
        user_agent=WECHAT_UA,
        viewport={"width": 390, "height": 844},
        device_scale_factor=2,
        is_mobile=True,
        has_touch=True,
        locale="zh-CN",
        **options,
    )


def watched_page(context):
    """Open a tab that records script errors and CSP violations in ``tab.problems``."""
    tab = context.new_page()
    tab.problems = []
    # CSP violations and script errors are bugs even when the page still "works".
    tab.on("pageerror", lambda exc: tab.problems.append(f"pageerror: {exc}"))
    tab.on(
        "console",
        lambda msg: (
            tab.problems.append(f"console: {msg.text}")
            if msg.type == "error" and "Content Security Policy" in msg.text
            else None
        ),
    )
    return tab
