"""Per-app-stateless extensions: login manager, CSRF, the session cookie policy."""

from flask import request
from flask.sessions import SecureCookieSessionInterface
from flask_login import LoginManager
from flask_wtf.csrf import CSRFProtect

login_manager = LoginManager()
csrf = CSRFProtect()


class SessionInterface(SecureCookieSessionInterface):
    """Mark the session cookie Secure whenever the browser reached us over https.

    The public scheme comes from ProxyFix (WX_PROXY_HOPS), so one setting serves plain
    http on a laptop and https behind a tunnel.
    """

    def get_cookie_secure(self, app):
        return bool(app.config["SESSION_COOKIE_SECURE"] or request.is_secure)


def init_app(app):
    """Install the extensions on ``app``."""
    app.session_interface = SessionInterface()
    # Referer checks break behind tunnels that rewrite Host; the token is what protects us.
    app.config.setdefault("WTF_CSRF_SSL_STRICT", False)
    app.config.setdefault("WTF_CSRF_TIME_LIMIT", None)
    csrf.init_app(app)
    # "basic", not "strong": a phone hops between Wi-Fi and 4G (new IP, same person);
    # "strong" would log it out each time. Logins are revocable server-side instead.
    login_manager.session_protection = "basic"
    login_manager.init_app(app)
