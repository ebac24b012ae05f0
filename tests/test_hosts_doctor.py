"""``wx doctor`` compares this host with the others that started on the same database."""

import time

import pytest
from support import SECRET_KEY, site_config

from wxsite import create_app, hosts, store


def host(tmp_path, emu, name, **overrides):
    """A site on the test's database, with its own instance folder (another host)."""
    return create_app(site_config(tmp_path, emu, INSTANCE_PATH=str(tmp_path / name), **overrides))


def findings(app):
    return {label: (ok, detail) for ok, label, detail in hosts.compare(app)}


def test_hosts_on_one_database_see_each_other_and_what_they_must_share(tmp_path, emu):
    a = host(tmp_path, emu, "a")
    alone = findings(a)
    assert alone["hosts"] == (True, "0 other host(s) on this database: none")
    assert "uploads shared" not in alone  # one host may keep a local folder
    host(tmp_path, emu, "b")
    found = findings(a)
    assert found["hosts"][1].startswith("1 other host(s)") and found["hosts"][1].endswith(
        ":" + str(tmp_path / "b")
    )
    assert found["same SECRET_KEY"] == (True, "all 2 hosts agree")
    # Same folder path on two machines is not one folder: several hosts need shared storage.
    assert found["uploads shared"][0] is False and "s3://" in found["uploads shared"][1]
    assert found["jobs shared"][0] is False and "WXSITE_REDIS_URL" in found["jobs shared"][1]
    assert found["IP whitelist"][0] is None and "40164" in found["IP whitelist"][1]


@pytest.mark.parametrize(
    "setting, label",
    [("SECRET_KEY", "same SECRET_KEY"), ("WXSITE_UPLOADS", "same uploads")],
)
def test_a_host_that_disagrees_is_named_without_its_secret(tmp_path, emu, setting, label):
    a = host(tmp_path, emu, "a")
    other = {"SECRET_KEY": "another-secret-key-" + "x" * 40, "WXSITE_UPLOADS": str(tmp_path / "u2")}
    host(tmp_path, emu, "c", **{setting: other[setting]})
    ok, detail = findings(a)[label]
    assert ok is False and str(tmp_path / "c") in detail
    text = repr(hosts.compare(a))
    assert other["SECRET_KEY"] not in text and SECRET_KEY not in text


def test_wx_doctor_prints_the_host_checks(tmp_path, emu):
    a = host(tmp_path, emu, "a")
    host(tmp_path, emu, "b", SECRET_KEY="another-secret-key-" + "y" * 40)
    result = a.test_cli_runner().invoke(args=["wx", "doctor"])
    assert result.exit_code == 1
    assert "same SECRET_KEY" in result.output and "IP whitelist" in result.output
    assert "another-secret-key" not in result.output


def test_hosts_whose_clocks_disagree_are_named(tmp_path, emu):
    a = host(tmp_path, emu, "a")
    host(tmp_path, emu, "b")
    ok, detail = findings(a)["clocks"]
    assert ok is True and detail.startswith("within 0.")
    # A host 30 s ahead: the leases it writes look expired (or still held) to the others.
    ahead = host(tmp_path, emu, "c", WXSITE_CLOCK=lambda: time.time() + 30)
    for app, named in ((a, str(tmp_path / "c") + " +30.0 s"), (ahead, "this host +30.0 s")):
        ok, detail = findings(app)["clocks"]
        assert ok is False and "disagree by 30 s" in detail and "NTP" in detail
        assert named in detail


def test_a_host_recorded_before_clock_offsets_is_left_out(tmp_path, emu):
    a = host(tmp_path, emu, "a")
    with store.engine(a).connection() as db:
        store.note_host(db, "old-host:/srv/site", {"secret_key": "x"})
    ok, detail = findings(a)["clocks"]
    assert ok is True and "old-host" not in detail
