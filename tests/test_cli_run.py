"""`wx run`, `wx emulator` and plain `flask run` in emulator mode: ports, state, warnings."""

import socket
from types import SimpleNamespace

import flask.cli
import pytest
import werkzeug.serving
from click.testing import CliRunner

from support import site_config
from wxsite import cli, create_app
from wxsite.emulator import server
from wxsite.wechat import protocol


def _stored(app, kind):
    from wxsite import store

    return store.CredentialStore(app.config["WXSITE_DATABASE"]).read(protocol.EMULATOR_APPID, kind)


@pytest.fixture
def no_serving(monkeypatch):
    """Commands that would serve return at once; record what the emulator was started on."""
    started = []

    def start(emulator, host, port, quiet=False):
        started.append(SimpleNamespace(app=emulator, host=host, port=port))
        return SimpleNamespace(base_url=f"http://{host}:{port}")

    served = []
    monkeypatch.setattr(server, "start", start)
    monkeypatch.setattr(werkzeug.serving, "run_simple", lambda *a, **k: served.append((a, k)))
    return SimpleNamespace(started=started, served=served)


@pytest.fixture
def listener():
    """A socket listening on a free loopback port (something already running there)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    yield sock.getsockname()[1]
    sock.close()


def dead_url():
    """Return a loopback URL where nothing listens."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def test_run_drops_the_credentials_a_new_emulator_never_issued(
    runner, app, emu, monkeypatch, no_serving, tmp_path
):
    from wxsite import wx

    # The session's emulator is where WXSITE_EMULATOR_URL points: not "in use" here.
    monkeypatch.setattr(cli, "_port_in_use", lambda host, port: False)
    with app.app_context():
        wx.client().jsapi_ticket()  # issued by "yesterday's" emulator
    assert _stored(app, "jsapi_ticket").value
    state = tmp_path / "emulator.sqlite3"
    result = runner.invoke(args=["wx", "run", "--port", "0", "--state", str(state)])
    assert result.exit_code == 0, result.output
    assert no_serving.started, "the emulator was not started"
    assert f"emulator state: {state} (new; --reset starts clean)" in result.output
    assert "dropped the stored access_token and jsapi_ticket" in result.output
    for kind in ("access_token", "jsapi_ticket"):
        row = _stored(app, kind)
        assert row is None or row.value is None
    with app.app_context():
        assert wx.client().jsapi_ticket()  # fetched from the new emulator
    assert emu.count(protocol.TICKET) == 2


def test_run_keeps_the_credentials_a_kept_emulator_still_honours(
    runner, app, monkeypatch, no_serving, tmp_path
):
    monkeypatch.setattr(cli, "_port_in_use", lambda host, port: False)
    state = str(tmp_path / "emulator.sqlite3")
    first = runner.invoke(args=["wx", "run", "--port", "0", "--state", state])
    assert first.exit_code == 0, first.output
    emulator = no_serving.started[-1].app
    emulator.test_client().get(
        protocol.TOKEN,
        query_string={
            "grant_type": "client_credential",
            "appid": protocol.EMULATOR_APPID,
            "secret": protocol.EMULATOR_SECRET,
        },
    )
    emulator.extensions["wxemu.file"].close()
    again = runner.invoke(args=["wx", "run", "--port", "0", "--state", state])
    assert "(kept from the last run; --reset starts clean)" in again.output
    assert "dropped the stored" not in again.output
    no_serving.started[-1].app.extensions["wxemu.file"].close()
    clean = runner.invoke(args=["wx", "run", "--port", "0", "--state", state, "--reset"])
    assert "(new; --reset starts clean)" in clean.output
    assert "dropped the stored" in clean.output


def test_run_says_which_variable_moves_a_busy_emulator_port(runner, app, emu, no_serving):
    # WXSITE_EMULATOR_URL points at the session's emulator, which holds that port.
    port = emu.base_url.rsplit(":", 1)[1]
    result = runner.invoke(args=["wx", "run", "--port", "0"])
    assert result.exit_code == 1
    assert f"port {port} (the emulator's, from WXSITE_EMULATOR_URL={emu.base_url}) is in use" in (
        result.output
    )
    assert f"WXSITE_EMULATOR_URL=http://127.0.0.1:{int(port) + 1} make run" in result.output
    assert not no_serving.started and not no_serving.served


def test_run_says_which_variable_moves_a_busy_site_port(runner, listener, no_serving):
    result = runner.invoke(args=["wx", "run", "--port", str(listener)])
    assert result.exit_code == 1
    assert f"port {listener} (the site's) is in use" in result.output
    assert f"PORT={listener + 1} make run" in result.output
    assert f"wx run --port {listener + 1}" in result.output


def test_a_busy_site_port_never_suggests_the_emulators(tmp_path, emu, listener, no_serving):
    emulator_url = f"http://127.0.0.1:{listener + 1}"
    app = create_app(site_config(tmp_path, emu, WXSITE_EMULATOR_URL=emulator_url))
    result = app.test_cli_runner().invoke(args=["wx", "run", "--port", str(listener)])
    assert result.exit_code == 1
    assert f"PORT={listener + 2} make run" in result.output


def test_emulator_listens_where_the_site_looks_and_names_its_state(
    runner, app, emu, no_serving, tmp_path
):
    # Its default port is WXSITE_EMULATOR_URL's: taken here by the session's emulator.
    port = int(emu.base_url.rsplit(":", 1)[1])
    busy = runner.invoke(args=["wx", "emulator"])
    assert busy.exit_code == 1
    assert f"port {port} is in use" in busy.output
    assert f"--port {port + 1}" in busy.output
    assert f"WXSITE_EMULATOR_URL=http://127.0.0.1:{port + 1}" in busy.output
    state = str(tmp_path / "emu.sqlite3")
    ok = runner.invoke(args=["wx", "emulator", "--port", "0", "--state", state])
    assert ok.exit_code == 0, ok.output
    assert f"emulator state: {state} (new; --reset starts clean)" in ok.output
    assert "start the site with WXSITE_EMULATOR_URL=http://127.0.0.1:0" in ok.output
    ((args, _),) = no_serving.served
    assert args[:2] == ("127.0.0.1", 0)
    assert args[2].extensions["wxemu.file"].path == state
    args[2].extensions["wxemu.file"].close()
    memory = runner.invoke(args=["wx", "emulator", "--port", "0", "--state", ":memory:"])
    assert "emulator state: in memory only" in memory.output


def _plain_flask(tmp_path, emu, args, monkeypatch, **overrides):
    """Invoke the plain `flask` command line (FlaskGroup) on a test site."""
    monkeypatch.setattr(flask.cli, "run_simple", lambda *a, **k: None)
    monkeypatch.delenv("FLASK_DEBUG", raising=False)
    group = flask.cli.FlaskGroup(
        create_app=lambda: create_app(site_config(tmp_path, emu, **overrides))
    )
    return CliRunner().invoke(group, args)


def test_plain_flask_run_warns_once_when_no_emulator_answers(tmp_path, emu, monkeypatch):
    url = dead_url()
    result = _plain_flask(tmp_path, emu, ["run"], monkeypatch, WXSITE_EMULATOR_URL=url)
    assert result.exit_code == 0, result.output
    warning = f"warning: emulator mode (no WX_APPID) but nothing answers at {url}"
    assert result.stderr.count(warning) == 1
    assert "login would redirect to a dead port" in result.stderr
    assert "flask --app wsgi wx emulator" in result.stderr


def test_plain_flask_run_is_quiet_when_the_emulator_answers(tmp_path, emu, monkeypatch):
    result = _plain_flask(tmp_path, emu, ["run"], monkeypatch)
    assert result.exit_code == 0, result.output
    assert "warning" not in result.stderr


def test_other_commands_never_probe_the_emulator(tmp_path, emu, monkeypatch):
    url = dead_url()
    result = _plain_flask(
        tmp_path, emu, ["wx", "db", "status"], monkeypatch, WXSITE_EMULATOR_URL=url
    )
    assert result.exit_code == 0, result.output
    assert "warning" not in result.stderr


def test_wechat_unreachable_in_emulator_mode_says_to_start_the_emulator(tmp_path, emu):
    url = dead_url()
    app = create_app(site_config(tmp_path, emu, WXSITE_EMULATOR_URL=url, WXSITE_DEADLINE=2.0))
    answer = app.test_client().get("/jssdk/config", query_string={"url": "http://localhost/"})
    assert answer.status_code == 503
    message = answer.json["message"]
    assert message.startswith("微信服务暂时不可用")
    assert f"模拟器没有运行（WXSITE_EMULATOR_URL={url} 没有响应）" in message
    assert "flask --app wsgi wx emulator" in message and "make run" in message


def test_a_slow_emulator_is_not_called_dead(client, emu):
    emu.fault(protocol.STABLE_TOKEN, status=502, count=-1)
    answer = client.get("/jssdk/config", query_string={"url": "http://localhost/"})
    assert answer.status_code == 503
    assert "模拟器没有运行" not in answer.json["message"]
