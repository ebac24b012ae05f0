"""Bad configuration stops start-up with one line naming the variable."""

import os
import subprocess
import sys

import pytest

from wxsite import config
from wxsite.config import ConfigError
from wxsite.wechat import protocol

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

BAD = [
    ({"WX_APPID": "wx0123456789abcdef"}, "WX_SECRET"),
    ({"WX_SECRET": "s3cret"}, "WX_APPID"),
    ({"WX_APPID": "not-an-appid", "WX_SECRET": "x", "SECRET_KEY": "k" * 40}, "WX_APPID"),
    ({"WX_APPID": "wx0123456789abcdef", "WX_SECRET": "x"}, "SECRET_KEY"),
    (
        {"WX_APPID": "wx0123456789abcdef", "WX_SECRET": "x", "SECRET_KEY": "k" * 40},
        "WXSITE_PUBLIC_URL",
    ),
    ({"WXSITE_TRUSTED_HOSTS": "https://wx.example.com"}, "WXSITE_TRUSTED_HOSTS"),
    ({"WXSITE_TRUSTED_HOSTS": "wx.example.com:8000"}, "WXSITE_TRUSTED_HOSTS"),
    ({"WXSITE_TRUSTED_HOSTS": "ok.example.com, evil.com/path"}, "WXSITE_TRUSTED_HOSTS"),
    ({"WX_API_BASE": "api.weixin.qq.com"}, "WX_API_BASE"),
    ({"WX_OPEN_BASE": "ftp://open.weixin.qq.com"}, "WX_OPEN_BASE"),
    ({"WX_JSSDK_URL": "not a url"}, "WX_JSSDK_URL"),
    ({"WX_PROXY_HOPS": "one"}, "WX_PROXY_HOPS"),
    ({"WX_PROXY_HOPS": "-1"}, "WX_PROXY_HOPS"),
    ({"WX_TOKEN_API": "fast"}, "WX_TOKEN_API"),
    ({"WXSITE_DEADLINE": "soon"}, "WXSITE_DEADLINE"),
]


@pytest.mark.parametrize("environ,name", BAD)
def test_bad_setting_names_the_variable(environ, name):
    with pytest.raises(ConfigError) as info:
        config.load(environ)
    assert str(info.value).startswith(name)
    assert "\n" not in str(info.value)


def test_emulator_mode_points_everything_at_the_emulator():
    settings = config.load({"WXSITE_EMULATOR_URL": "http://127.0.0.1:5999"})
    assert settings["WX_EMULATOR"] is True
    assert settings["WX_APPID"] == protocol.EMULATOR_APPID
    assert settings["WX_API_BASE"] == settings["WX_OPEN_BASE"] == "http://127.0.0.1:5999"
    assert settings["WX_JSSDK_URL"] == "http://127.0.0.1:5999" + protocol.EMULATOR_JSSDK_PATH


PRODUCTION = {
    "WX_APPID": "wx0123456789abcdef",
    "WX_SECRET": "s",
    "SECRET_KEY": "k" * 40,
    "WXSITE_PUBLIC_URL": "https://wx.example.com",
}


def test_production_defaults_are_the_official_hosts():
    settings = config.load(PRODUCTION)
    assert settings["WX_EMULATOR"] is False
    assert settings["WX_API_BASE"] == "https://api.weixin.qq.com"
    assert settings["WX_OPEN_BASE"] == "https://open.weixin.qq.com"
    assert settings["WX_JSSDK_URL"] == "https://res.wx.qq.com/open/js/jweixin-1.6.0.js"
    assert settings["WX_TOKEN_API"] == "stable"
    assert settings["WX_PROXY_HOPS"] == 0


def test_production_answers_only_its_public_host_and_the_listed_ones():
    assert config.load(PRODUCTION)["WXSITE_ALLOWED_HOSTS"] == ["wx.example.com"]
    more = config.load({**PRODUCTION, "WXSITE_TRUSTED_HOSTS": " 10.0.0.5, .Example.org ,"})
    assert more["WXSITE_ALLOWED_HOSTS"] == ["wx.example.com", "10.0.0.5", ".example.org"]


def test_emulator_mode_answers_any_host_unless_told():
    assert config.load({})["WXSITE_ALLOWED_HOSTS"] is None
    told = config.load({"WXSITE_PUBLIC_URL": "https://abc.trycloudflare.com/"})
    assert told["WXSITE_ALLOWED_HOSTS"] == ["abc.trycloudflare.com"]


def test_apps_built_by_tests_may_run_production_on_any_host():
    # create_app(test_config) with TESTING: the test client's localhost is not a public URL.
    settings = config.load({k: v for k, v in PRODUCTION.items() if k != "WXSITE_PUBLIC_URL"}, True)
    assert settings["WX_EMULATOR"] is False and settings["WXSITE_ALLOWED_HOSTS"] is None


def test_production_start_up_without_public_url_names_it(tmp_path):
    env = {
        "PATH": os.environ["PATH"],
        "WX_APPID": "wx0123456789abcdef",
        "WX_SECRET": "s",
        "SECRET_KEY": "k" * 40,
        "WXSITE_DOTENV": str(tmp_path / "none.env"),
        "WXSITE_DATABASE": str(tmp_path / "db.sqlite3"),
        "WXSITE_UPLOADS": str(tmp_path / "uploads"),
    }
    result = subprocess.run(
        [sys.executable, "-c", "import wsgi"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert result.returncode == 3
    assert result.stderr.strip().splitlines() == [
        "wxsite: configuration error: WXSITE_PUBLIC_URL is not set: it is required when "
        "WX_APPID is set (production), it names the host the site answers"
    ]


def test_start_up_prints_one_line_and_exits(tmp_path):
    env = {
        "PATH": os.environ["PATH"],
        "WX_APPID": "wx0123456789abcdef",
        "WX_SECRET": "s",
        "WXSITE_DOTENV": str(tmp_path / "none.env"),
    }
    result = subprocess.run(
        [sys.executable, "-c", "import wsgi"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert result.returncode == 3
    lines = result.stderr.strip().splitlines()
    assert lines == [
        "wxsite: configuration error: SECRET_KEY is not set: it is required when WX_APPID is set (production)"
    ]
    assert "Traceback" not in result.stderr


def test_dev_secret_key_is_generated_once(tmp_path):
    from wxsite import create_app

    cfg = {
        "TESTING": True,
        "WXSITE_DATABASE": str(tmp_path / "db"),
        "WXSITE_UPLOADS": str(tmp_path / "u"),
        "INSTANCE_PATH": str(tmp_path / "instance"),
    }
    first = create_app(cfg).config["SECRET_KEY"]
    second = create_app(cfg).config["SECRET_KEY"]
    assert first == second and len(first) >= 32
    assert (tmp_path / "instance" / "secret_key").read_text() == first


def test_gunicorn_accepts_every_setting_of_gunicorn_conf():
    # gunicorn reads each module-level name that is one of its settings (a module imported
    # as ``config`` once stopped every host from starting).
    from gunicorn.config import Config

    import wxsite.gunicorn_conf as conf

    cfg = Config()
    used = [name for name in vars(conf) if name in cfg.settings]
    for name in used:
        cfg.set(name, getattr(conf, name))
    assert {"bind", "workers", "threads", "timeout"} <= set(used)


def test_wxsite_instance_moves_the_instance_folder(tmp_path, monkeypatch):
    from wxsite import config as settings
    from wxsite import create_app

    folder = tmp_path / "host-a"
    monkeypatch.setenv("WXSITE_DOTENV", str(tmp_path / "none.env"))
    monkeypatch.setenv("WXSITE_INSTANCE", str(folder))
    monkeypatch.setenv("WXSITE_JOBS_CONSUMER", "off")
    assert settings.instance_path({"WXSITE_INSTANCE": " "}) is None
    app = create_app()
    assert app.instance_path == str(folder)
    assert app.config["WXSITE_DATABASE"] == str(folder / "wxsite.sqlite3")
    assert (folder / "secret_key").exists()


def test_gunicorn_conf_imports_the_site_in_the_master_but_builds_nothing():
    # Workers fork from the master and inherit what it imported (0.7 s of CPU less per
    # worker start), so importing must start no thread, open no file or socket and build
    # no app: a forked worker would share them.
    script = (
        "import os, sys, threading\n"
        "before = set(os.listdir('/proc/self/fd'))\n"
        "import wxsite.gunicorn_conf\n"
        "opened = set(os.listdir('/proc/self/fd')) - before\n"
        "print(threading.active_count(), 'wxsite.app' in sys.modules, 'wsgi' in sys.modules,"
        " sorted(os.readlink('/proc/self/fd/' + fd) for fd in opened if os.path.exists("
        "'/proc/self/fd/' + fd)))\n"
    )
    out = (
        subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, check=True, cwd=ROOT
        )
        .stdout.strip()
        .split(maxsplit=3)
    )
    assert out == ["1", "True", "False", "[]"]
