"""The application factory: settings, then one small ``register_*``/``init_app`` per part."""

import os
import secrets
from collections import ChainMap

import jinja2
from flask import Flask
from flask.templating import _default_template_ctx_processor
from jinja2.runtime import new_context
from werkzeug.middleware.proxy_fix import ProxyFix

from . import cli, config, errors, extensions, hosts, jobs, logs, security, store, wx

PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def create_app(test_config=None):
    """Create the site. ``test_config`` replaces the environment (tests never read it).

    Its ``INSTANCE_PATH`` moves the instance folder (tests keep theirs in a temp dir), as
    ``WXSITE_INSTANCE`` does in the environment (hosts sharing one checkout).
    """
    if test_config is None:
        instance = config.instance_path(os.environ)
    else:
        instance = test_config.get("INSTANCE_PATH")
    instance = instance or os.path.join(PROJECT_ROOT, "instance")
    app = Flask(
        "wxsite",
        template_folder=os.path.join(PROJECT_ROOT, "templates"),
        static_folder=os.path.join(PROJECT_ROOT, "static"),
        instance_path=instance,
    )
    app.jinja_env.template_class = Template
    _configure(app, test_config)
    # JSON answers in readable Chinese (JSON_AS_ASCII has done nothing since Flask 2.3).
    app.json.ensure_ascii = False
    security.init_inputs(app)  # before the blueprints: their <int:…> routes use its converter
    logs.init_app(app)
    _register_proxy_fix(app)
    store.init_app(app)
    wx.init_app(app)
    wx.init_pay(app)
    wx.init_push(app)
    extensions.init_app(app)
    errors.init_app(app)
    security.init_app(app)
    _register_blueprints(app)
    _one_default_context_processor(app)
    cli.init_app(app)
    jobs.init_app(app)  # last: its threads may run jobs at once, on a finished app
    hosts.record(app)
    return app


class Template(jinja2.Template):
    """Jinja's template, starting each render from the environment's globals themselves.

    A template's globals are ``ChainMap(its own, the environment's)``; every render copies
    them into its context, one Python-level look-up per global (18 of them here). With
    none of its own (every template here), the environment's dict is the same mapping,
    read as it is at that render, and copied in one C call.
    """

    def new_context(self, vars=None, shared=False, locals=None):
        globals = self.globals
        if type(globals) is ChainMap and len(globals.maps) == 2 and not globals.maps[0]:
            globals = globals.maps[1]
        return new_context(self.environment, self.name, self.blocks, vars, shared, globals, locals)


def _configure(app, test_config):
    if test_config is None:
        settings = config.load_environ()
        extra = {}
    else:
        settings = config.load(test_config, testing=bool(test_config.get("TESTING")))
        extra = {k: v for k, v in test_config.items() if k not in settings}
    app.config.from_mapping(settings)
    app.config.update(extra)
    os.makedirs(app.instance_path, exist_ok=True)
    app.config["WXSITE_DATABASE"] = app.config["WXSITE_DATABASE"] or os.path.join(
        app.instance_path, "wxsite.sqlite3"
    )
    app.config["WXSITE_UPLOADS"] = app.config["WXSITE_UPLOADS"] or os.path.join(
        app.instance_path, "uploads"
    )
    from .media import blobs  # a folder or s3://… (checked with the store: ConfigError if wrong)

    app.extensions[blobs.EXTENSION] = blobs.from_settings(app.config, app.instance_path)
    if not app.config["SECRET_KEY"]:
        app.config["SECRET_KEY"] = _dev_secret_key(app.instance_path)
    app.config.update(
        SESSION_COOKIE_NAME="wxsite_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        # Bounded like the server-side login records (wxsite.auth.users.LOGIN_MAX_AGE).
        PERMANENT_SESSION_LIFETIME=7 * 86400,
        # Send the cookie only when the session changed: its expiry then stays the login's
        # (like the login record's), and an unchanged page is not re-signed and re-sent.
        SESSION_REFRESH_EACH_REQUEST=False,
        MAX_CONTENT_LENGTH=1024 * 1024,
    )


def _dev_secret_key(instance_path):
    # Emulator mode only (config refuses production without SECRET_KEY): keep one key
    # so sessions survive restarts of `make run`.
    path = os.path.join(instance_path, "secret_key")
    try:
        with open(path) as f:
            key = f.read().strip()
            if key:
                return key
    except FileNotFoundError:
        pass
    key = secrets.token_hex(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(key)
    return key


def _register_proxy_fix(app):
    hops = app.config["WX_PROXY_HOPS"]
    if hops:
        # Trust exactly `hops` proxies: the public scheme/host/port/prefix the browser saw
        # is what JS-SDK signatures and redirect_uri must use.
        app.wsgi_app = ProxyFix(
            app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops, x_port=hops, x_prefix=hops
        )


def _one_default_context_processor(app):
    """Drop the copies of Flask's own context processor that each blueprint brought along.

    Every blueprint carries Flask's default processor (``g``, ``request``, ``session``) and
    registering it adds that to the blueprint's list, so a page of a blueprint computed the
    same three names twice per render. The app's own copy still runs for every page.
    """
    default = _default_template_ctx_processor
    for name, processors in app.template_context_processors.items():
        if name is not None:
            processors[:] = [p for p in processors if p is not default]


def _register_blueprints(app):
    from .account import bp as account_bp
    from .auth import bp as auth_bp
    from .inbound import bp as inbound_bp
    from .jssdk import bp as jssdk_bp
    from .media import bp as media_bp
    from .pages import bp as pages_bp
    from .pay import bp as pay_bp

    # In the order their entries are listed on the home page (wxsite.menu).
    app.register_blueprint(pages_bp)
    app.register_blueprint(auth_bp)
    app.register_blueprint(account_bp)
    app.register_blueprint(jssdk_bp)
    app.register_blueprint(media_bp)
    app.register_blueprint(pay_bp)
    app.register_blueprint(inbound_bp)
