"""``wx doctor`` prints the 服务器配置 entries and checks /wechat/push answers its own URL check."""

from support import site_config
from wxsite import create_app

TOKEN = "doctorpushtoken"


def test_doctor_checks_push_and_prints_the_console_entries(tmp_path, emu):
    app = create_app(site_config(tmp_path, emu, WX_PUSH_TOKEN=TOKEN, WX_PUSH_AES_KEY="k" * 43))
    result = app.test_cli_runner().invoke(
        args=["wx", "doctor", "--public-url", "https://wx.example.com"]
    )
    assert "服务器地址(URL): https://wx.example.com/wechat/push" in result.output
    assert "消息加解密方式: 安全模式（推荐）" in result.output
    assert TOKEN not in result.output and "k" * 43 not in result.output  # never the secrets


def test_doctor_verifies_the_endpoint_through_the_site(tmp_path, emu):
    app = create_app(site_config(tmp_path, emu, WX_PUSH_TOKEN=TOKEN))
    result = app.test_cli_runner().invoke(args=["wx", "doctor"])
    assert (
        "server push: /wechat/push at the site answers the URL check (plaintext)" in result.output
    )


def test_doctor_says_push_is_off(tmp_path, emu):
    app = create_app(site_config(tmp_path, emu))
    result = app.test_cli_runner().invoke(args=["wx", "doctor"])
    assert "server push: off (WX_PUSH_TOKEN not set)" in result.output


def test_wx_run_points_the_emulator_at_the_site(tmp_path, emu):
    from wxsite.cli import _emulator_push
    from wxsite.emulator import create_emulator

    app = create_app(site_config(tmp_path, emu, WX_PUSH_TOKEN=TOKEN))
    with app.app_context():
        config = _emulator_push(app, "127.0.0.1", 5000)
    emulator = create_emulator(config)
    pushed = emulator.test_client().get("/_emu/push/config").get_json()
    mine = [c for c in pushed if c["appid"] == app.config["WX_APPID"]][0]
    assert mine["url"] == "http://127.0.0.1:5000/wechat/push" and mine["mode"] == "plaintext"
    assert _emulator_push(create_app(site_config(tmp_path / "b", emu)), "h", 1) == {}


def test_doctor_reports_a_failing_check(tmp_path, emu):
    # The public URL leads to a site that holds another token: WeChat's URL check would fail
    # there, so the doctor's does, says how, and the command fails.
    from support import LiveServer

    other = create_app(site_config(tmp_path / "other", emu, WX_PUSH_TOKEN="anotherpushtoken"))
    server = LiveServer(other)
    try:
        app = create_app(site_config(tmp_path, emu, WX_PUSH_TOKEN=TOKEN))
        result = app.test_cli_runner().invoke(
            args=["wx", "doctor", "--public-url", server.base_url]
        )
    finally:
        server.shutdown()
    line = f"FAIL  server push: /wechat/push at {server.base_url} answered HTTP 403"
    assert line in result.output.splitlines(), result.output
    assert result.exit_code != 0


def test_doctor_reports_an_unreachable_endpoint(tmp_path, emu):
    import socket

    # A port held but not listening refuses connections, and no other process can take it.
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{held.getsockname()[1]}"
        app = create_app(site_config(tmp_path, emu, WX_PUSH_TOKEN=TOKEN))
        result = app.test_cli_runner().invoke(args=["wx", "doctor", "--public-url", url])
    assert f"FAIL  server push: {url}/wechat/push unreachable (ConnectionError)" in result.output
    assert result.exit_code != 0
