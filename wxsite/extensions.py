"""Per-app-stateless extensions: login manager, CSRF, the session cookie policy, assets."""

import copy
import functools
import hashlib
import time
from collections import OrderedDict
from datetime import timedelta

from flask import current_app, g, request, session, url_for
from flask.sessions import SecureCookieSessionInterface
from flask_login import LoginManager, current_user
from flask_wtf.csrf import CSRFProtect, generate_csrf
from itsdangerous import BadSignature

from . import assets

login_manager = LoginManager()
csrf = CSRFProtect()


#: Values a cached session hands out as they are; anything else (a list, a dict) is copied,
#: so a request that changes one in place cannot change the cache.
_ATOMS = (str, int, float, bool, type(None))


class SessionInterface(SecureCookieSessionInterface):
    """Flask's signed-cookie session, verifying each distinct cookie once per process.

    Flask builds a serializer and checks the cookie's HMAC on every request; a logged-in
    person sends the same cookie on every page. Verified cookies are remembered by their
    exact value (with the keys that verified them) together with the time they were
    signed, so the lifetime (PERMANENT_SESSION_LIFETIME) is still checked every time.
    Only cookies whose signature verified enter the cache, so nothing a client invents
    can fill it; a changed secret key misses it. Bounded: the oldest entry goes when full.

    The session cookie is also marked Secure whenever the browser reached us over https:
    the public scheme comes from ProxyFix (WX_PROXY_HOPS), so one setting serves plain
    http on a laptop and https behind a tunnel.
    """

    #: How many verified cookies each process remembers.
    cache_size = 4096

    def __init__(self):
        self._serializers = {}
        self._verified = OrderedDict()

    def get_signing_serializer(self, app):
        keys = (app.secret_key, *(app.config["SECRET_KEY_FALLBACKS"] or ()))
        if not keys[0]:
            return None
        serializer = self._serializers.get(keys)
        if serializer is None:
            serializer = self._serializers[keys] = super().get_signing_serializer(app)
        return serializer

    def open_session(self, app, request):
        val = request.cookies.get(self.get_cookie_name(app))
        serializer = self.get_signing_serializer(app)
        if serializer is None:
            return None
        if not val:
            return self.session_class()
        max_age = int(app.permanent_session_lifetime.total_seconds())
        key = (serializer, val)  # a serializer per set of keys, kept for the process
        hit = self._verified.get(key)
        if hit is not None:
            data, signed_at = hit
            if 0 <= int(time.time()) - signed_at <= max_age:
                return self.session_class(
                    {k: v if type(v) in _ATOMS else copy.deepcopy(v) for k, v in data.items()}
                )
            self._verified.pop(key, None)
            return self.session_class()
        try:
            data, signed = serializer.loads(val, max_age=max_age, return_timestamp=True)
        except BadSignature:
            return self.session_class()
        if len(self._verified) >= self.cache_size:
            self._verified.popitem(last=False)  # one C call: safe beside other threads
        self._verified[key] = (copy.deepcopy(data), int(signed.timestamp()))
        return self.session_class(data)

    def get_cookie_secure(self, app):
        return bool(app.config["SESSION_COOKIE_SECURE"] or request.is_secure)

    def save_session(self, app, session, response):
        # Most pages leave the session as it came: then Flask's save_session only adds
        # "Vary: Cookie" (if the page read the session) after working out every cookie
        # flag it will not use. Anything that may send or delete the cookie goes to it.
        if session.modified or (session.permanent and app.config["SESSION_REFRESH_EACH_REQUEST"]):
            return super().save_session(app, session, response)
        if session.accessed:
            headers = response.headers
            # getlist: get raises (and catches) a KeyError when there is none, the usual case.
            vary = headers.getlist("Vary")
            if not vary:
                headers.add("Vary", "Cookie")  # none yet: no search for one to replace
            elif "cookie" not in {v.strip().lower() for v in vary[0].split(",")}:
                response.vary.add("Cookie")
        return None


#: Signed CSRF tokens by (secret, session token): signing one costs more than the rest of
#: a page's template. Bounded: the oldest entry goes when full, so a token signed a moment ago stays.
_SIGNED = OrderedDict()
_SIGNED_MAX = 4096


def csrf_token():
    """Return the page's CSRF token, signing each session's token once per process."""
    app = current_app._get_current_object()
    config = app.config
    field = config["WTF_CSRF_FIELD_NAME"]
    ctx = g._get_current_object()
    if config["WTF_CSRF_TIME_LIMIT"] is not None or field in ctx:
        # A time limit needs a fresh timestamp; a token made this request is reused.
        return generate_csrf()
    secret = config.get("WTF_CSRF_SECRET_KEY") or app.secret_key
    data = session._get_current_object()
    token = _SIGNED.get((secret, data.get(field)))
    if token is None:
        token = generate_csrf()  # puts a first token into the session if there is none
        if len(_SIGNED) >= _SIGNED_MAX:
            _SIGNED.popitem(last=False)  # one C call: safe beside other threads
        _SIGNED[(secret, data[field])] = token
    # Where Flask-WTF looks first, so a form on the page gets the same token.
    setattr(ctx, field, token)
    return token


@functools.lru_cache(maxsize=4096)
def _identifier(address, user_agent):
    # Flask-Login's _create_identifier, on the same inputs: sha512 of "addr|b'user agent'".
    ua = user_agent.encode("utf-8") if user_agent is not None else None
    address = address.encode("utf-8").split(b",")[0].strip() if address is not None else None
    return hashlib.sha512(f"{address}|{ua}".encode("utf8")).hexdigest()


def session_identifier():
    """Return Flask-Login's session identifier for this request, each one hashed once."""
    req = request._get_current_object()
    environ = req.environ  # the two headers as they came, without headers.get's name mapping
    return _identifier(
        environ.get("HTTP_X_FORWARDED_FOR", req.remote_addr), environ.get("HTTP_USER_AGENT")
    )


#: How many (endpoint, script root) paths each app keeps (``path_for``).
_PATHS_MAX = 1024


def path_for(endpoint):
    """Return ``url_for(endpoint)`` for an endpoint without arguments, built once per process.

    The path depends only on the URL map (fixed once the app serves) and the script root
    (the prefix a trusted proxy may set), so it is kept per app under both.
    """
    app = current_app._get_current_object()
    key = (endpoint, request._get_current_object().root_path)  # the script root
    paths = app.extensions["wxsite.paths"]
    path = paths.get(key)
    if path is None:
        path = url_for(endpoint)
        if len(paths) < _PATHS_MAX:
            paths[key] = path
    return path


class _Paths:
    """``{{ endpoint_paths['pages.home'] }}`` in a template: ``path_for('pages.home')`` (a subscript
    costs a template less than a call)."""

    def __getitem__(self, endpoint):
        return path_for(endpoint)


def _csrf_for_unsafe_methods(app):
    """Run Flask-WTF's request check only for the methods it checks (not for every GET).

    Its hook looks up the view's exemption first and the method last; for a GET, HEAD or
    OPTIONS it then does nothing. The same hook still decides every POST, PUT, PATCH and
    DELETE, with its exemptions and its settings as they are at that moment.
    """
    hooks = app.before_request_funcs.setdefault(None, [])
    for i, hook in enumerate(hooks):
        if hook.__module__ == "flask_wtf.csrf" and hook.__name__ == "csrf_protect":
            break
    else:  # pragma: no cover - a Flask-WTF without that hook: leave it as it is
        return
    check = hooks[i]
    config = app.config

    def csrf_protect():
        if request._get_current_object().method in config["WTF_CSRF_METHODS"]:
            return check()
        return None

    hooks[i] = csrf_protect


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
    # Flask-WTF also hands every template its own generate_csrf through a context
    # processor, which wins over the global: pages signed a fresh token on every render
    # (a new timestamp each second, so two pages of one session rarely matched). Drop it.
    processors = app.template_context_processors[None]
    processors[:] = [p for p in processors if p.__module__ != "flask_wtf.csrf"]
    _csrf_for_unsafe_methods(app)
    app.extensions["wxsite.paths"] = {}
    app.jinja_env.globals["path_for"] = path_for
    app.jinja_env.globals["endpoint_paths"] = _Paths()
    # "basic", not "strong": a phone hops between Wi-Fi and 4G (new IP, same person), and
    # behind a carrier NAT or a tunnel the address changes under people's feet; "strong"
    # would log them out each time. With "basic" (and our permanent sessions) a changed
    # IP/User-Agent only marks the session non-fresh, and nothing here asks for freshness.
    # What protects a stolen cookie instead: logins are revocable server-side (logout,
    # rotation on bind) and expire with their record (wxsite.auth.users.LOGIN_MAX_AGE).
    login_manager.session_protection = "basic"
    login_manager._session_identifier_generator = session_identifier  # same value, memoized
    login_manager.init_app(app)
    # Flask-Login's context processor loads the user into every render; the templates
    # that show who is logged in read the same user through the proxy instead, and the
    # others (/share) do not pay for it.
    processors[:] = [p for p in processors if p.__module__ != "flask_login.utils"]
    app.jinja_env.globals["current_user"] = current_user
    assets.init_app(app)  # hashed static names with a year's lifetime
    # Flask asks of every hook and view, on every request, whether it is a coroutine
    # function (14 inspect calls for a /share); the answer for a function never changes.
    app.ensure_sync = functools.lru_cache(maxsize=1024)(app.ensure_sync)
