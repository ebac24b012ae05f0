"""``flask wx …`` and ``flask account …``: thin click commands over the library."""

import errno
import hashlib
import logging
import os
import socket
import sys
from urllib.parse import urlsplit

import click
from flask import current_app
from flask.cli import AppGroup

from . import accounts, store, wx
from .jobs.cli import jobs_group, worker_command
from .logs import quiet
from .wechat import WeChatError
from .wechat.client import ACCESS_TOKEN, JSAPI_TICKET
from .wechat.credentials import ForceRefused

wx_cli = AppGroup("wx", help="WeChat: the emulator and the shared credentials.")
account_cli = AppGroup("account", help="Site accounts that WeChat users bind to.")
db_cli = AppGroup(
    "db",
    help="The database: migrations, and moving a site to PostgreSQL.\n\n"
    "Example: flask --app wsgi wx db status",
)
wx_cli.add_command(db_cli)
wx_cli.add_command(worker_command)
wx_cli.add_command(jobs_group)


def _emulator_address(app):
    """Return (host, port, url) of WXSITE_EMULATOR_URL, where the site expects the emulator."""
    url = app.config["WXSITE_EMULATOR_URL"].rstrip("/")
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or 80, url


def _port_in_use(host, port):
    """Tell whether *port* on *host* is taken (something already listens there)."""
    if not port:
        return False
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            return exc.errno == errno.EADDRINUSE
    return False


def _state_path(app, state):
    """Return the emulator's state file (None: in memory), default instance/emulator.sqlite3."""
    if state == ":memory:":
        return None
    return state or os.path.join(app.instance_path, EMULATOR_STATE_FILE)


def _shown(path):
    relative = os.path.relpath(path)
    return path if relative.startswith("..") else relative


def _make_emulator(app, state, reset, config=None):
    """Create the emulator on its state file and say where that is.

    Return (emulator, whether it still knows tokens or tickets issued before the restart).
    """
    from .emulator import create_emulator, persist

    path = _state_path(app, state)
    if path and reset:
        persist.remove(path)
    emulator = create_emulator({**(config or {}), "EMU_STATE_FILE": path})
    if path is None:
        click.echo("emulator state: in memory only (forgotten when it stops)")
        return emulator, False
    state_file = emulator.extensions["wxemu.file"]
    how = "kept from the last run" if state_file.existed else "new"
    click.echo(f"emulator state: {_shown(path)} ({how}; --reset starts clean)")
    return emulator, state_file.restored


EMULATOR_STATE_FILE = "emulator.sqlite3"
_STATE_HELP = (
    "File that keeps the emulator's users, tokens, media and orders across restarts "
    "[default: instance/emulator.sqlite3]; ':memory:' keeps nothing."
)


@wx_cli.command("emulator")
@click.option("--host", default=None, help="[default: the host of WXSITE_EMULATOR_URL]")
@click.option(
    "--port", default=None, type=int, help="[default: the port of WXSITE_EMULATOR_URL, 5001]"
)
@click.option("--state", default=None, metavar="FILE", help=_STATE_HELP)
@click.option("--reset", is_flag=True, help="Forget the kept state and start clean.")
def emulator_command(host, port, state, reset):
    """Run the WeChat emulator alone (where WXSITE_EMULATOR_URL says the site finds it).

    Example: flask --app wsgi wx emulator --reset
    """
    from werkzeug.serving import run_simple

    app = current_app._get_current_object()
    expected_host, expected_port, expected = _emulator_address(app)
    host = host or expected_host
    port = expected_port if port is None else port
    if _port_in_use(host, port):
        raise click.ClickException(
            f"port {port} is in use: is an emulator already running there (make run starts "
            f"one too)? Stop it, or start this one on another port with --port {port + 1} "
            f"and give the site the same address: WXSITE_EMULATOR_URL=http://{host}:{port + 1}"
        )
    emulator, _ = _make_emulator(app, state, reset)
    click.echo(f"WeChat emulator on http://{host}:{port}/")
    if (host, port) != (expected_host, expected_port):
        click.echo(
            f"the site looks for it at {expected}: start the site with "
            f"WXSITE_EMULATOR_URL=http://{host}:{port}"
        )
    run_simple(host, port, emulator, threaded=True, use_reloader=False)


@wx_cli.command("run")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
@click.option("--state", default=None, metavar="FILE", help=_STATE_HELP)
@click.option("--reset", is_flag=True, help="Start the emulator with a clean state.")
def run_command(host, port, state, reset):
    """Run the site for development, with the emulator beside it in emulator mode.

    The site's port is --port (make run: PORT=5002 make run); the emulator's address is
    WXSITE_EMULATOR_URL (default http://127.0.0.1:5001).

    Example: flask --app wsgi wx run --port 5000
    """
    from werkzeug.serving import run_simple

    app = current_app._get_current_object()
    if _port_in_use(host, port):
        other = port + 1
        if app.config["WX_EMULATOR"] and other == _emulator_address(app)[1]:
            other += 1  # not the emulator's (5000 + 1 is its default)
        raise click.ClickException(
            f"port {port} (the site's) is in use: stop what runs there, or pick another: "
            f"PORT={other} make run (or flask --app wsgi wx run --port {other})"
        )
    if app.config["WX_EMULATOR"]:
        from .emulator.server import start

        emu_host, emu_port, emu_url = _emulator_address(app)
        if _port_in_use(emu_host, emu_port):
            raise click.ClickException(
                f"port {emu_port} (the emulator's, from WXSITE_EMULATOR_URL={emu_url}) is in "
                "use: is another make run or wx emulator running? Stop it, or move the "
                f"emulator: WXSITE_EMULATOR_URL=http://{emu_host}:{emu_port + 1} make run"
            )
        emulator, kept = _make_emulator(app, state, reset, _emulator_push(app, host, port))
        running = start(emulator, emu_host, emu_port, quiet=True)
        click.echo(f"WeChat emulator on {running.base_url}/ (no WX_APPID configured)")
        if not kept:
            # A new emulator knows none of the tokens and tickets the last one issued; kept,
            # they would make every JS-SDK page fail its signature until they expire.
            wx.client().credentials.forget()
            click.echo(
                "dropped the stored access_token and jsapi_ticket (a new emulator issues new ones)"
            )
    click.echo(f"wxsite on http://{host}:{port}/")
    # werkzeug's access lines carry query strings (?code=…&state=…); wxsite logs its own.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    run_simple(host, port, app, threaded=True, use_reloader=False, use_debugger=False)


def _emulator_push(app, host, port):
    """Point the emulator's 服务器配置 at this site when push is configured (WX_PUSH_TOKEN)."""
    cfg = app.config
    if not cfg["WX_PUSH_TOKEN"]:
        return {}
    target = {
        "url": f"http://{host}:{port}/wechat/push",
        "token": cfg["WX_PUSH_TOKEN"],
        "aes_key": cfg["WX_PUSH_AES_KEY"],
        "mode": "safe" if cfg["WX_PUSH_AES_KEY"] else "plaintext",
    }
    click.echo(f"the emulator pushes follow events to {target['url']} ({target['mode']} mode)")
    return {"EMU_PUSH": {cfg["WX_APPID"]: target}}


def warn_if_plain_run_has_no_emulator(app):
    """``flask run`` (not ``wx run``) in emulator mode: say once if no emulator answers.

    ``wx run`` starts the emulator itself; plain ``flask run`` does not, and login would
    send the browser to a port where nothing listens.
    """
    from flask.cli import run_command as flask_run
    from flask.helpers import get_debug_flag
    from werkzeug.serving import is_running_from_reloader

    context = click.get_current_context(silent=True)
    if context is None or context.command is not flask_run or not app.config["WX_EMULATOR"]:
        return
    reload = context.params.get("reload")
    if (get_debug_flag() if reload is None else reload) and not is_running_from_reloader():
        return  # the reloader's child process serves, and warns
    from .errors import listening

    url = app.config["WX_OPEN_BASE"]
    if listening(url):
        return
    click.secho(
        f"warning: emulator mode (no WX_APPID) but nothing answers at {url} "
        "(WXSITE_EMULATOR_URL): login would redirect to a dead port. Start the emulator "
        "in another terminal: flask --app wsgi wx emulator — or run both with make run "
        "(flask --app wsgi wx run).",
        err=True,
        fg="yellow",
    )


@wx_cli.command("token")
@click.option("--refresh", is_flag=True, help="Drop the stored token and ticket, fetch new ones.")
@click.option(
    "--force",
    is_flag=True,
    help="Retire a leaked access_token: stable_token force_refresh (20 a day, 30 s apart).",
)
@quiet
def token_command(refresh, force):
    """Show the shared access_token and jsapi_ticket status (never the values).

    Example: flask --app wsgi wx token --refresh
    """
    client = wx.client()
    try:
        if force:
            old = client.credentials.stored(ACCESS_TOKEN)
            new = client.force_refresh_token()
            if new == old:
                # The docs say a force_refresh inside 30 s "不会刷新": say so, never claim success.
                raise click.ClickException("WeChat handed back the same access_token: not rotated")
            done = client.credentials.force_status(ACCESS_TOKEN)
            click.echo(
                f"access_token: forced a new one ({done['today']} of {done['limit']} today); "
                "every worker and host follows within seconds"
            )
        for kind in (ACCESS_TOKEN, JSAPI_TICKET):
            if refresh and not (force and kind == ACCESS_TOKEN):
                value = client.credentials.refresh(kind)
            else:
                value = client.credentials.get(kind)
            status = client.credentials.status(kind)
            fingerprint = hashlib.sha256(value.encode()).hexdigest()[:8]
            click.echo(f"{kind}: ok, expires in {status['expires_in']} s (sha256 {fingerprint}…)")
    except (ForceRefused, ValueError) as exc:
        raise click.ClickException(f"not forced: {exc}")
    except WeChatError as exc:
        raise click.ClickException(f"{exc.path}: errcode {exc.errcode}. {exc.hint or exc.errmsg}")


@wx_cli.command("doctor")
@click.option(
    "--public-url", default=None, help="The site's public URL, e.g. https://wx.example.com"
)
@quiet
def doctor_command(public_url):
    """Check config, database, uploads, WeChat credentials and the public URL.

    Example: flask --app wsgi wx doctor --public-url https://wx.example.com
    """
    from . import doctor

    app = current_app._get_current_object()
    checks = doctor.run(app, wx.client(), public_url)
    marks = {True: "PASS", False: "FAIL", None: "WARN"}
    for check in checks:
        click.echo(f"{marks[check.ok]}  {check.label}: {check.detail}")
    if public_url:
        click.echo("\nEnter in the MP console (mp.weixin.qq.com):")
        for line in doctor.console_entries(app.config, public_url):
            click.echo(f"  {line}")
    if any(check.ok is False for check in checks):
        raise SystemExit(1)


@account_cli.command("create")
@click.argument("username")
@click.option("--display-name", default=None, help="Name shown on the site.")
@quiet
def account_create(username, display_name):
    """Create a site account; the password is asked twice (or read from stdin).

    Example: flask --app wsgi account create alice
    """
    if sys.stdin.isatty():
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    else:
        password = sys.stdin.readline().rstrip("\n")
    try:
        account_id = accounts.create(store.get_db(), username, password, display_name)
    except accounts.AccountError as exc:
        raise click.ClickException(str(exc))
    click.echo(f"created account {account_id}: {username}")


@account_cli.command("list")
@quiet
def account_list():
    """List site accounts and how many WeChat identities each has bound.

    Example: flask --app wsgi account list
    """
    rows = store.list_accounts(store.get_db())
    if not rows:
        click.echo("no accounts")
    for row in rows:
        click.echo(f"{row['id']}\t{row['username']}\t{row['wechat_identities']} WeChat")


@db_cli.command("status")
@quiet
def db_status():
    """Show the engine and which migrations are applied.

    Example: flask --app wsgi wx db status
    """
    info = store.engine().describe()
    click.echo(f"{info['engine']} {info.get('version', '?')} at {info['database']}")
    with store.engine().connection() as db:
        for name, applied_at in store.applied(db):
            click.echo(f"{'applied' if applied_at else 'pending'}  {name}")


@db_cli.command("migrate")
@quiet
def db_migrate():
    """Apply pending migrations (start-up does this too; safe to repeat).

    Example: flask --app wsgi wx db migrate
    """
    with store.engine().connection() as db:
        store.migrate(db)
        pending = [name for name, at in store.applied(db) if at is None]
    click.echo("all migrations applied" if not pending else f"pending: {', '.join(pending)}")


@db_cli.command("copy")
@click.argument("target")
@quiet
def db_copy(target):
    """Copy this site's data into an empty database (e.g. PostgreSQL), then compare counts.

    Example: flask --app wsgi wx db copy postgresql://wxsite:PASSWORD@db.internal:5432/wxsite
    """

    def progress(table, rows):
        click.echo(f"copied {rows:>7} rows of {table}")

    try:
        with store.engine().connection() as source:
            copied = store.copy_site(source, target, progress)
    except (store.CopyRefused, store.ConfigError, store.Unavailable) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"done: {sum(copied.values())} rows, counts match; now set WXSITE_DATABASE to it")


def init_app(app):
    """Add the command groups to ``app.cli``."""
    warn_if_plain_run_has_no_emulator(app)
    app.cli.add_command(wx_cli)
    app.cli.add_command(account_cli)
    from .pay.cli import pay_cli

    app.cli.add_command(pay_cli)
