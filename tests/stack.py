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

    def __init__(self, args, env=None, log_path=None, cwd=None):
        self.log_path = log_path or tempfile.mktemp(prefix="wxsite-", suffix=".log")
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            args,
            env=env,
            cwd=cwd or ROOT,
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

    def kill(self):
        """``kill -9`` the whole process group (gunicorn's master and its workers) at once."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        # Workers are in the group too; a dead master cannot reap them, so wait them out.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                os.killpg(self.proc.pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.02)


class EmulatorProcess(Process):
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


def host_root(workdir):
    """Return a folder that looks like a checkout of the site: its own ``instance/``.

    The app keeps its instance folder next to the package (``<checkout>/instance``), so
    hosts started from one checkout would share it. Each host gets a folder of symlinks to
    the code instead; Python does not resolve them in ``__file__``, so the app's instance
    folder is ``<root>/instance``, as on a machine with its own checkout.
    """
    root = os.path.join(workdir, "root")
    os.makedirs(root, exist_ok=True)
    for name in ("wxsite", "templates", "static", "wsgi.py", "bench"):
        link = os.path.join(root, name)
        if not os.path.lexists(link):
            os.symlink(os.path.join(ROOT, name), link)
    return root


class Gunicorn(Process):
    """The site under gunicorn with the production config.

    ``root`` (see ``host_root``) runs it from a folder of its own, so its instance folder
    is its own too; ``wait=False`` returns at once (call ``ready()``), so several hosts
    boot side by side.
    """

    def __init__(
        self,
        workdir,
        emulator_url,
        workers=4,
        threads=4,
        port=None,
        env=None,
        app="wsgi:app",
        root=None,
        wait=True,
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
            # Never the checkout's instance folder (a host of its own: its own folder's).
            "WXSITE_INSTANCE": os.path.join(root or workdir, "instance"),
            **(env or {}),
        }
        self.env = full_env
        self.root = root or ROOT
        args = [
            os.path.join(VENV_BIN, "gunicorn"),
            "-c",
            "python:wxsite.gunicorn_conf",
            "--pythonpath",
            f"{self.root},{os.path.join(self.root, 'bench')}",
            app,
        ]
        super().__init__(
            args, env=full_env, log_path=os.path.join(workdir, "gunicorn.log"), cwd=self.root
        )
        if wait:
            self.ready()

    def url(self, path):
        return self.base_url + path

    def ready(self, timeout=30.0):
        """Wait until the site answers /healthz."""
        wait_for(self.base_url + "/healthz", timeout=timeout, proc=self.proc)
        return self

    def flask(self, *args, input=None):
        """Run ``flask --app wsgi ARGS`` against this site's database."""
        return subprocess.run(
            [os.path.join(VENV_BIN, "flask"), "--app", "wsgi", *args],
            env=self.env,
            cwd=self.root,
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
{upstream_block}
    server {{
        listen 127.0.0.1:{port}{tls};
        server_name _;
        client_max_body_size 2m;
        location / {{
            proxy_pass http://{upstream};
{forwarding}{upstream_header}
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


#: Several hosts: nginx's default balancing is round robin; a host that refuses connections
#: is skipped (proxy_next_upstream error) and left alone for fail_timeout.
UPSTREAM_BLOCK = """
    upstream wxsite_hosts {{
{servers}
    }}"""

#: Which host answered (tests count the spread; a client never needs it).
UPSTREAM_HEADER = """
            add_header X-Upstream $upstream_addr always;"""


class Nginx(Process):
    """nginx in front of ``upstream_port``, like a tunnel: with ``tls=True`` it terminates
    https (self-signed) as ngrok or cloudflared would.

    ``upstream_port`` may be a list of ports: a round-robin balancer over several hosts,
    each answer naming its host in ``X-Upstream``.
    """

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
            if isinstance(upstream_port, (list, tuple)):
                servers = "\n".join(
                    f"        server 127.0.0.1:{p} max_fails=1 fail_timeout=10s;"
                    for p in upstream_port
                )
                upstream_block = UPSTREAM_BLOCK.format(servers=servers)
                upstream, upstream_header = "wxsite_hosts", UPSTREAM_HEADER
            else:
                upstream_block, upstream_header = "", ""
                upstream = f"127.0.0.1:{upstream_port}"
            f.write(
                NGINX_CONF.format(
                    dir=conf_dir,
                    port=self.port,
                    upstream=upstream,
                    upstream_block=upstream_block,
                    upstream_header=upstream_header,
                    forwarding=forwarding,
                    tls=tls_conf,
                )
            )
        super().__init__(
            [nginx_binary(), "-e", os.path.join(conf_dir, "error.log"), "-c", conf, "-p", conf_dir]
        )
        wait_for(self.base_url + "/healthz", proc=self.proc, verify=self.cert or True)

    def url(self, path):
        return self.base_url + path


class Stack:
    """The emulator, the site and optionally nginx, with ``url()`` as the browser sees it."""

    def __init__(self, variant, workdir, env=None):
        self.variant = variant
        self.emulator = EmulatorProcess()
        env = {"WX_PROXY_HOPS": "1", **(env or {})} if variant == "nginx" else env
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


class RedisServer(Process):
    """A throwaway redis-server on a free loopback port (nothing saved to disk)."""

    def __init__(self, workdir, port=None):
        binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        if not os.access(binary, os.X_OK):
            raise RuntimeError(
                "redis-server is missing: run `make test` (installs Debian's redis-server)"
            )
        self.port = port or free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        os.makedirs(workdir, exist_ok=True)
        args = [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
        args += ["--appendonly", "no", "--dir", str(workdir)]
        super().__init__(args, log_path=os.path.join(workdir, "redis.log"), cwd=workdir)
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"redis-server did not start\n{self.log()}") from None
                time.sleep(0.05)

    def client(self):
        import redis

        return redis.Redis.from_url(self.url, socket_timeout=2)


class Hosts:
    """N identical hosts behind one nginx (round robin), sharing what several hosts share.

    Each host is its own gunicorn (own process group, own folder and instance folder, same
    SECRET_KEY); all of them use one PostgreSQL database, one Redis (credentials) and one
    S3 bucket (media, unless ``s3`` is None: then a local folder per host). ``pg`` is a
    ``pgserver.PostgresServer``, ``s3`` a ``s3server.SeaweedServer``; the emulator is
    started here unless one is given. ``host_env`` maps a host's index to settings of its
    own (a misconfigured host: ``{0: {"WXSITE_REDIS_URL": ""}}`` leaves host A off Redis).
    """

    def __init__(
        self,
        workdir,
        pg,
        s3=None,
        count=3,
        workers=2,
        threads=4,
        emulator=None,
        env=None,
        host_env=None,
    ):
        workdir = str(workdir)
        if not nginx_binary():
            raise RuntimeError("nginx is missing: run `make test` (installs Debian's nginx)")
        self.emulator = emulator or EmulatorProcess()
        self.own_emulator = emulator is None
        self.redis = RedisServer(os.path.join(workdir, "redis"))
        self.hosts = []
        self.proxy = None
        self.env = {
            "WXSITE_DATABASE": pg.create_database(),
            "WXSITE_REDIS_URL": self.redis.url,
            "WX_PROXY_HOPS": "1",
            **(s3.settings(s3.create_bucket()) if s3 else {}),
            **(env or {}),
        }
        self.s3 = s3
        self.bucket = self.env["WXSITE_UPLOADS"][len("s3://") :] if s3 else None
        try:
            for i in range(count):
                folder = os.path.join(workdir, f"host{'ABCDEFGHIJ'[i]}")
                os.makedirs(folder, exist_ok=True)
                self.hosts.append(
                    Gunicorn(
                        folder,
                        self.emulator.base_url,
                        workers=workers,
                        threads=threads,
                        env={**self.env, **(host_env or {}).get(i, {})},
                        root=host_root(folder),
                        wait=False,
                    )
                )
            for host in self.hosts:
                host.ready(timeout=60)
            self.proxy = Nginx(workdir, [h.port for h in self.hosts])
        except BaseException:
            self.stop()
            raise
        self.base_url = self.proxy.base_url

    def url(self, path):
        return self.base_url + path

    @staticmethod
    def host_files(host):
        """Return every file under ``host``'s instance folder (what it keeps to itself)."""
        found = []
        for folder, _, files in os.walk(os.path.join(host.root, "instance")):
            found += [os.path.join(folder, f) for f in files]
        return sorted(found)

    def stop(self):
        for part in [self.proxy, *self.hosts, self.redis]:
            if part:
                part.stop()
        if self.own_emulator:
            self.emulator.stop()


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
