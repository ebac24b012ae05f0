"""A throwaway PostgreSQL server for tests: Debian's initdb + pg_ctl in a temp dir.

Import the fixtures into a conftest to use them (``from pgserver import pg_server, pg_url``):
``pg_server`` is one server per test process (``shared_server()`` outside fixtures),
``pg_url`` a fresh empty database in it per test. The server listens on a free loopback
port (password auth over TCP, like a real deployment) and on a unix socket in its temp dir
(trusted, for the fixture's own admin work); durability is off (fsync,
synchronous_commit, full_page_writes) because nothing here needs to survive a crash.
``initdb`` refuses to run as root, so as root every server command runs as the
``postgres`` OS user and the temp dir belongs to that user.
"""

import atexit
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid

import pytest

#: Oldest PostgreSQL wxsite supports (SPEC §6).
MIN_MAJOR = 15
#: Role and password the tests connect with; the password only guards a loopback port.
USER = "wxsite"
PASSWORD = "wx-test-pw"
#: The OS user that owns the cluster when the tests run as root.
OS_USER = "postgres"


def find_bindir():
    """Return the newest ``/usr/lib/postgresql/<major>/bin`` with initdb, or None."""
    found = []
    for initdb in glob.glob("/usr/lib/postgresql/*/bin/initdb"):
        major = initdb.split("/")[4]
        if major.isdigit() and int(major) >= MIN_MAJOR:
            found.append((int(major), os.path.dirname(initdb)))
    return max(found)[1] if found else None


def ensure_binaries():
    """Return the bin dir, installing Debian's postgresql first if we can; else a skip reason."""
    bindir = find_bindir()
    if bindir:
        return bindir, None
    # Same rule as `make system-deps`: only root on a Debian-like system can install.
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        return None, (
            f"PostgreSQL {MIN_MAJOR}+ server binaries are missing and cannot be installed "
            "here (not root or no apt-get): run `sudo apt-get install postgresql` or `make test`"
        )
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    log = os.path.join(tempfile.gettempdir(), "wxsite-apt-postgresql.log")
    with open(log, "w") as out:
        ok = (
            subprocess.call(["apt-get", "update", "-qq"], stdout=out, stderr=out, env=env) == 0
            and subprocess.call(
                ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "postgresql"],
                stdout=out,
                stderr=out,
                env=env,
            )
            == 0
        )
    bindir = find_bindir()
    if bindir:
        return bindir, None
    return None, f"installing Debian's postgresql failed ({'no binaries' if ok else log})"


def free_port():
    """Return a loopback TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PostgresServer:
    """One PostgreSQL cluster in its own temp dir: start/stop as often as needed, then remove."""

    def __init__(self, bindir):
        self.bindir = bindir
        self.as_root = os.geteuid() == 0
        # Not pytest's tmp_path: that lives under a 0700 root-only dir the postgres user
        # cannot enter. A short path also keeps the socket under the 107-byte limit.
        self.dir = tempfile.mkdtemp(prefix="wxsite-pg-")
        self.data = os.path.join(self.dir, "data")
        self.log = os.path.join(self.dir, "server.log")
        self.port = free_port()
        self.running = False
        if self.as_root:
            shutil.chown(self.dir, OS_USER, OS_USER)
        atexit.register(self.remove)  # a crashed session still stops its server
        self._initdb()

    def _run(self, *args, timeout=60):
        cmd = [os.path.join(self.bindir, args[0]), *args[1:]]
        if self.as_root:
            cmd = ["runuser", "-u", OS_USER, "--", *cmd]
        # cwd: the postgres user cannot read root's working directory.
        done = subprocess.run(cmd, cwd=self.dir, capture_output=True, text=True, timeout=timeout)
        if done.returncode != 0:
            raise RuntimeError(
                f"{args[0]} failed ({done.returncode}): {done.stderr.strip()}\n{self.log_tail()}"
            )
        return done

    def _initdb(self):
        pwfile = os.path.join(self.dir, "pwfile")
        with open(pwfile, "w") as f:
            f.write(PASSWORD + "\n")
        if self.as_root:
            shutil.chown(pwfile, OS_USER, OS_USER)
        self._run(
            "initdb",
            "-D",
            self.data,
            "-U",
            USER,
            "--pwfile",
            pwfile,
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            "--no-locale",
            "-E",
            "UTF8",
            "--no-sync",  # nothing here must survive a power cut
        )
        os.unlink(pwfile)
        settings = {
            "listen_addresses": "'127.0.0.1'",
            "port": self.port,
            "unix_socket_directories": f"'{self.dir}'",
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            "max_connections": 100,
            "shared_buffers": "'32MB'",
            "log_min_messages": "warning",
            "log_min_error_statement": "panic",  # expected errors (locks, conflicts) stay quiet
        }
        with open(os.path.join(self.data, "postgresql.conf"), "a") as conf:
            conf.write("\n# wxsite tests\n")
            conf.writelines(f"{k} = {v}\n" for k, v in settings.items())

    def start(self, timeout=30):
        """Start the server and wait until it accepts connections."""
        args = ["pg_ctl", "-D", self.data, "-l", self.log, "-w", "-t", str(timeout), "start"]
        self._run(*args, timeout=timeout + 10)
        self.running = True

    def stop(self, mode="fast"):
        """Stop the server (``fast`` disconnects clients; ``immediate`` is a crash)."""
        if self.running:
            self._run("pg_ctl", "-D", self.data, "-m", mode, "-w", "stop")
            self.running = False

    def remove(self):
        """Stop the server if it runs and delete its directory (safe to call twice)."""
        try:
            if self.running:
                self.stop("immediate")
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)

    def log_tail(self, lines=20):
        """Return the end of the server log (for failure messages)."""
        try:
            with open(self.log, errors="replace") as f:
                return "".join(f.readlines()[-lines:])
        except OSError:
            return ""

    def url(self, dbname="postgres", user=USER, password=PASSWORD):
        """Return a ``postgresql://`` URL to ``dbname`` over TCP (password auth)."""
        auth = f"{user}:{password}" if password is not None else user
        return f"postgresql://{auth}@127.0.0.1:{self.port}/{dbname}"

    def admin(self, sql):
        """Run one SQL statement as the superuser over the unix socket (psql, trusted)."""
        where = ["-h", self.dir, "-p", str(self.port), "-U", USER, "-d", "postgres"]
        self._run("psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", *where, "-c", sql)

    def create_database(self, name=None):
        """Create an empty database and return its URL."""
        name = name or f"t_{uuid.uuid4().hex[:12]}"
        self.admin(f'CREATE DATABASE "{name}" TEMPLATE template0')
        return self.url(name)


def start_server():
    """Start a fresh server; ``pytest.skip`` only when the binaries cannot be had."""
    bindir, reason = ensure_binaries()
    if not bindir:
        pytest.skip(reason)
    if os.geteuid() == 0:
        try:
            import pwd

            pwd.getpwnam(OS_USER)
        except KeyError:
            pytest.skip(f"running as root but there is no {OS_USER!r} OS user for initdb")
    started = time.monotonic()
    server = PostgresServer(bindir)
    try:
        server.start()
    except BaseException:
        server.remove()
        raise
    server.startup_seconds = time.monotonic() - started
    return server


_shared = []


def shared_server():
    """Start (once per test process) the server every folder's fixtures share.

    One per process, not one per conftest that imports ``pg_server`` or per caller
    (tests/engines and tests/hosts both use it): a second server would cost its start-up
    again. Removed at exit (``PostgresServer`` registers that itself).
    """
    if not _shared:
        _shared.append(start_server())
    return _shared[0]


@pytest.fixture(scope="session")
def pg_server():
    """The process's PostgreSQL server (``shared_server``), removed at exit even on failure."""
    return shared_server()


@pytest.fixture
def pg_url(pg_server):
    """A URL to a fresh, empty database on the session's server."""
    return pg_server.create_database()
