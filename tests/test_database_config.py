"""A WXSITE_DATABASE that cannot work stops start-up with one line, never the password."""

import os
import subprocess
import sys

import pytest

from stack import ROOT


@pytest.mark.parametrize(
    "value, words",
    [
        ("postgresql://u:s3cret@127.0.0.1:1/x", "cannot reach"),
        ("postgresql://u:s3cret@/x", "WXSITE_DATABASE"),
        ("mysql://u:s3cret@127.0.0.1/x", "unsupported scheme"),
    ],
    ids=["unreachable", "no-host", "scheme"],
)
def test_bad_database_stops_start_up_with_one_line(tmp_path, value, words):
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "WXSITE_DOTENV": str(tmp_path / "none.env"),
        "WXSITE_DATABASE": value,
    }
    result = subprocess.run(
        [sys.executable, "-c", "import wsgi"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 3
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "WXSITE_DATABASE" in lines[0] and words in lines[0], lines
    assert "s3cret" not in result.stderr
