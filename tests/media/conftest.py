"""Media tests run on both blob stores: a local folder and a real S3 server (SeaweedFS).

``app`` here replaces the top-level one: each test that takes it (or ``live``,
``logged_in``) runs twice, ``[local]`` and ``[s3]``. In S3 mode the site stores into the
session's bucket under a fresh prefix, with its local temp folder in the test's tmp_path.
"""

import uuid

import pytest

from s3server import s3_server  # noqa: F401 - fixture, re-exported for this folder
from media_helpers import JOBS_ON
from support import site_config
from wxsite import create_app, jobs

BUCKET = "wxsite-media"


@pytest.fixture(scope="session")
def s3_bucket(s3_server):  # noqa: F811
    """The bucket every S3-mode media test stores into (each under its own prefix)."""
    return s3_server.create_bucket(BUCKET)


@pytest.fixture(params=["local", "s3"])
def backend(request):
    return request.param


@pytest.fixture
def media_config(backend, request, tmp_path):
    """Settings that put the site's media on ``backend`` (nothing for the local folder)."""
    if backend == "local":
        return {}
    server = request.getfixturevalue("s3_server")
    bucket = request.getfixturevalue("s3_bucket")
    return {
        **server.settings(bucket, f"t-{uuid.uuid4().hex[:12]}"),
        "WXSITE_UPLOADS_TMP": str(tmp_path / "uploads-tmp"),
    }


@pytest.fixture(autouse=True)
def stop_job_threads():
    """Stop the job consumers a test's apps started (their threads must not outlive it)."""
    yield
    jobs.stop_all()


@pytest.fixture
def app(tmp_path, emu, media_config):
    return create_app(site_config(tmp_path, emu, **JOBS_ON, **media_config))
