"""Per-app-stateless extensions: login manager, CSRF, the session cookie policy."""

from collections import OrderedDict
from datetime import timedelta

from flask import current_app, g, request, session
from flask.sessions import SecureCookieSessionInterface
from flask_login import LoginManager
from flask_wtf.csrf import CSRFProtect, generate_csrf

login_manager = LoginManager()
csrf = CSRFProtect()


class SessionInterface(SecureCookieSessionInterface):
    """Mark the session cookie Secure whenever the browser reached us over https.

    The public scheme comes from ProxyFix (WX_PROXY_HOPS), so one setting serves plain
    http on a laptop and https behind a tunnel.
    """

    def get_cookie_secure(self, app):
        return bool(app.config["SESSION_COOKIE_SECURE"] or request.is_secure)


#: Signed CSRF tokens by (secret, session token): signing one costs more than the rest of
#: a page's template. Bounded: the oldest entry goes when full, so a token signed a moment ago stays.
_SIGNED = OrderedDict()
_SIGNED_MAX = 4096


def csrf_token():
    """Return the page's CSRF token, signing each session's token once per process."""
    config = current_app.config
    field = config["WTF_CSRF_FIELD_NAME"]
    if config["WTF_CSRF_TIME_LIMIT"] is not None or field in g:
        # A time limit needs a fresh timestamp; a token made this request is reused.
        return generate_csrf()
    secret = config.get("WTF_CSRF_SECRET_KEY") or current_app.secret_key
    token = _SIGNED.get((secret, session.get(field)))
    if token is None:
        token = generate_csrf()  # puts a first token into the session if there is none
        if len(_SIGNED) >= _SIGNED_MAX:
            _SIGNED.popitem(last=False)  # one C call: safe beside other threads
        _SIGNED[(secret, session[field])] = token
    # Where Flask-WTF looks first, so a form on the page gets the same token.
    setattr(g, field, token)
    return token


def init_app(app):
    """Install the extensions on ``app``."""
    app.session_interface = SessionInterface()
    # Referer checks break behind tunnels that rewrite Host; the token is what protects us.
    app.config.setdefault("WTF_CSRF_SSL_STRICT", False)
    app.config.setdefault("WTF_CSRF_TIME_LIMIT", None)
    # No remember cookie is ever set (logins are permanent sessions bounded by the login
    # record); should one appear, it gets the session cookie's flags and a short life.
    app.config.setdefault("REMEMBER_COOKIE_HTTPONLY", True)
    app.config.setdefault("REMEMBER_COOKIE_SAMESITE", "Lax")
    app.config.setdefault("REMEMBER_COOKIE_DURATION", timedelta(days=7))
    csrf.init_app(app)
    app.jinja_env.globals["csrf_token"] = csrf_token
    # "basic", not "strong": a phone hops between Wi-Fi and 4G (new IP, same person), and
    # behind a carrier NAT or a tunnel the address changes under people's feet; "strong"
    # would log them out each time. With "basic" (and our permanent sessions) a changed
    # IP/User-Agent only marks the session non-fresh, and nothing here asks for freshness.
    # What protects a stolen cookie instead: logins are revocable server-side (logout,
    # rotation on bind) and expire with their record (wxsite.auth.users.LOGIN_MAX_AGE).
    login_manager.session_protection = "basic"
    login_manager.init_app(app)
