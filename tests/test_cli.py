"""CLI commands: accounts, credentials, doctor; each documented in the README with help."""

import pathlib
import re

import pytest

from support import ENGINE
from wxsite import cli, config, store
from wxsite.wechat import protocol

README = (pathlib.Path(__file__).parent.parent / "README.md").read_text()


def test_account_create_reads_stdin_and_lists(runner):
    result = runner.invoke(args=["account", "create", "alice"], input="correct horse battery\n")
    assert result.exit_code == 0, result.output
    assert "created account 1: alice" in result.output
    assert "correct horse" not in result.output
    listed = runner.invoke(args=["account", "list"])
    assert "alice" in listed.output


def test_account_create_refuses_short_password_and_duplicates(runner):
    assert runner.invoke(args=["account", "create", "bob"], input="short\n").exit_code == 1
    runner.invoke(args=["account", "create", "bob"], input="long enough password\n")
    again = runner.invoke(args=["account", "create", "BOB"], input="long enough password\n")
    assert again.exit_code == 1 and "username BOB is taken" in again.output, again.output


def test_token_shows_status_not_the_token(runner, app, emu):
    result = runner.invoke(args=["wx", "token"])
    assert result.exit_code == 0, result.output
    assert "access_token: ok, expires in" in result.output
    with app.app_context():
        from wxsite import wx

        token = wx.client().access_token()
    assert token not in result.output
    refreshed = runner.invoke(args=["wx", "token", "--refresh"])
    assert refreshed.exit_code == 0
    assert emu.count(protocol.STABLE_TOKEN) == 2


def test_token_force_rotates_once_and_refuses_inside_30_seconds(runner, app, emu):
    runner.invoke(args=["wx", "token"])
    with app.app_context():
        from wxsite import wx

        before = wx.client().credentials.stored("access_token")
    forced = runner.invoke(args=["wx", "token", "--force"])
    assert forced.exit_code == 0, forced.output
    assert "forced a new one (1 of 20 today)" in forced.output
    with app.app_context():
        after = wx.client().credentials.stored("access_token")
    assert after != before and after not in forced.output
    again = runner.invoke(args=["wx", "token", "--force"])
    assert again.exit_code == 1
    assert "not forced" in again.output and "every 30 s" in again.output
    assert emu.count(protocol.STABLE_TOKEN) == 2


def test_token_explains_ip_whitelist(runner, emu):
    emu.fault(protocol.STABLE_TOKEN, errcode=protocol.IP_NOT_WHITELISTED, count=-1)
    result = runner.invoke(args=["wx", "token"])
    assert result.exit_code == 1
    assert "IP whitelist" in result.output


def test_doctor_passes_against_the_emulator_and_fails_on_bad_secret(runner, emu):
    result = runner.invoke(args=["wx", "doctor", "--public-url", "https://wx.example.com"])
    assert "PASS  access_token" in result.output
    assert "网页授权域名: wx.example.com" in result.output
    assert "JS接口安全域名: wx.example.com" in result.output
    assert result.exit_code == 0, result.output
    # The engine, its version, the migration level and (PostgreSQL) the pool; on both engines.
    n = len(store.MIGRATIONS)
    line = re.search(
        r"PASS  database: (\w+) (\S+) at .* \(migrations (\d+)/(\d+)(.*)\)", result.output
    )
    assert line and line.group(1) == ENGINE and line.group(2) != "?", result.output
    assert line.group(3) == line.group(4) == str(n)
    assert ("pool " in line.group(5)) == (ENGINE == "postgresql") and "***" not in result.output
    emu.fault(protocol.STABLE_TOKEN, errcode=protocol.INVALID_APPSECRET, count=-1)
    bad = runner.invoke(args=["wx", "doctor"])
    assert bad.exit_code == 1
    assert "FAIL  access_token: errcode 40125" in bad.output


def test_every_command_has_help_with_an_example_and_is_in_the_readme(runner):
    from wxsite.pay.cli import pay_cli

    groups = (("wx",), cli.wx_cli), (("account",), cli.account_cli), (("pay",), pay_cli)
    for path, group in (*groups, (("wx", "db"), cli.db_cli)):
        for name, command in group.commands.items():
            words = " ".join((*path, name))
            assert "Example: flask --app wsgi" in (command.help or ""), words
            assert f"{words}" in README or f"{' '.join(path[-1:])} {name}" in README, words
            assert runner.invoke(args=[*path, name, "--help"]).exit_code == 0


def test_the_readme_lists_exactly_the_settings_catalogue():
    section = README.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    listed = [
        name
        for line in section.splitlines()
        if line.startswith("| `")
        for name in re.findall(r"`([A-Z][A-Z0-9_]+)`", line.split("|")[1])
    ]
    catalogue = [s.name for s in config.SETTINGS + config.SERVER_SETTINGS]
    assert sorted(listed) == sorted(catalogue)


def test_gunicorn_settings_come_from_the_catalogue():
    assert config.server({}, cpus=2) == {"bind": "127.0.0.1:8000", "workers": 5, "threads": 4}
    assert config.server({"WEB_CONCURRENCY": "3", "WXSITE_THREADS": "8"})["workers"] == 3
    with pytest.raises(config.ConfigError, match="WXSITE_THREADS"):
        config.server({"WXSITE_THREADS": "many"})


def test_doctor_checks_the_served_verification_file(tmp_path, emu):
    from support import LiveServer, site_config
    from wxsite import create_app

    app = create_app(site_config(tmp_path, emu, WX_MP_VERIFY="Zx81verify"))
    live = LiveServer(app)
    try:
        result = app.test_cli_runner().invoke(args=["wx", "doctor", "--public-url", live.base_url])
    finally:
        live.shutdown()
    assert "PASS  MP_verify file" in result.output
    assert "WARN  public URL" in result.output  # plain http
    assert "FAIL  public port" in result.output  # not 80/443
    assert result.exit_code == 1


def _verifies(emu, config, url):
    import requests

    body = {**config, "url": url}
    return requests.post(emu.base_url + "/_emu/jssdk/verify", json=body, timeout=5).json()["ok"]


def _stored(app, kind):
    from wxsite import store

    return store.CredentialStore(app.config["WXSITE_DATABASE"]).read(protocol.EMULATOR_APPID, kind)


def test_doctor_is_read_only_and_a_running_site_keeps_working(runner, app, emu):
    from wxsite import wx

    url = "http://localhost/share"
    with app.app_context():
        config = wx.client().jssdk_config(url, ["updateAppMessageShareData"])
    ticket = _stored(app, "jsapi_ticket").value
    result = runner.invoke(args=["wx", "doctor"])
    assert result.exit_code == 0, result.output
    assert emu.count(protocol.TICKET) == 1  # checked without replacing
    assert _stored(app, "jsapi_ticket").value == ticket
    assert "PASS  access_token: AppID and AppSecret accepted" in result.output
    assert "PASS  jsapi_ticket: shared ticket valid" in result.output
    # Five minutes later the ticket every worker holds in memory still verifies.
    emu.advance(protocol.CLASSIC_TOKEN_GRACE + 1)
    assert _verifies(emu, config, url)
    assert ticket not in result.output


def test_doctor_never_replaces_a_classic_token(tmp_path, emu):
    from support import site_config
    from wxsite import create_app, wx

    app = create_app(site_config(tmp_path, emu, WX_TOKEN_API="classic"))
    openid = emu.users()["zhangsan"]["openids"][protocol.EMULATOR_APPID]
    with app.app_context():
        wx.client().access_token()
    result = app.test_cli_runner().invoke(args=["wx", "doctor"])
    assert result.exit_code == 0, result.output
    assert emu.count(protocol.TOKEN) == 1  # stable_token checks the secret, isolated from it
    emu.advance(protocol.CLASSIC_TOKEN_GRACE + 1)
    with app.app_context():
        assert wx.client().follower_info(openid)["subscribe"] == 1
    assert emu.count(protocol.TOKEN) == 1  # the stored token still works: no 40001, no refetch


def test_doctor_fetches_only_what_nobody_stored_yet(runner, emu):
    result = runner.invoke(args=["wx", "doctor"])
    assert result.exit_code == 0, result.output
    assert "PASS  jsapi_ticket: fetched (none was stored)" in result.output
    again = runner.invoke(args=["wx", "doctor"])
    assert "PASS  jsapi_ticket: shared ticket valid" in again.output
    assert emu.count(protocol.TICKET) == 1


def test_doctor_explains_40001_as_a_wrong_secret(runner, emu):
    emu.fault(protocol.STABLE_TOKEN, errcode=protocol.INVALID_CREDENTIAL, count=-1)
    result = runner.invoke(args=["wx", "doctor"])
    assert result.exit_code == 1
    assert "FAIL  access_token: errcode 40001: WX_SECRET is wrong" in result.output


def test_db_status_and_migrate(runner):
    status = runner.invoke(args=["wx", "db", "status"])
    assert status.exit_code == 0 and "applied  0001_initial" in status.output
    assert "pending" not in status.output
    assert "all migrations applied" in runner.invoke(args=["wx", "db", "migrate"]).output
