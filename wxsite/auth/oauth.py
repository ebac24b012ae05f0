"""Authlib's Flask OAuth client for WeChat web authorization, and its server-side state.

What goes through Authlib (``authlib.integrations.flask_client``):
- the registry, created per app (a module-level one would keep the first app's config
  when tests create several apps), with one remote app, ``wechat``;
- ``create_authorization_url``: Authlib generates the state (30 × ``[A-Za-z0-9]``);
  ``wxsite.wechat.oauth.WeChatOAuth2Session`` builds the link in WeChat's exact order;
- ``save_authorize_data`` / ``framework.get_state_data``: Authlib keeps a marker in the
  browser's session and the data (redirect_uri, next, scope) in its *cache* — here the
  ``auth_states`` table — so a state only validates in the browser that started it, and
  only until it expires (``STATE_TTL``);
- ``fetch_access_token``: the code exchange and token parsing, through the compliance
  layer in ``wxsite.wechat.oauth`` (appid/secret, GET, errcode, openid/unionid).

What does not, and why: ``authorize_access_token`` clears the state *before* trading the
code, and WeChat's browser delivers the callback twice and people press Back. With the
state gone, a lost first response (its Set-Cookie never arrived) locks the person out.
So the callback calls the same pieces itself (``get_state_data``, then
``fetch_access_token``) and keeps the attempt's outcome on the server-side row
(``attempt``): one request trades the code, the others finish that same login.
"""

import json
from dataclasses import dataclass

from authlib.integrations.flask_client import FlaskIntegration, FlaskOAuth2App, OAuth
from flask import current_app, session

from .. import clock, store, wx
from ..wechat.oauth import WeChatOAuth2Session

#: The remote app's name in the registry (also part of Authlib's state keys).
NAME = "wechat"
#: An authorization attempt older than this is refused (codes themselves live 5 minutes).
STATE_TTL = 600


def state_key(state):
    """Return the key Authlib stores ``state`` under (session marker and cache alike)."""
    # Mirrors FrameworkIntegration's f"_state_{name}_{state}"; a test checks the two agree.
    return f"_state_{NAME}_{state}"


class StateCache:
    """Authlib's cache interface over the ``auth_states`` table."""

    def get(self, key):
        row = store.get_auth_state(store.get_db(), key)
        if row is None or row["expires_at"] <= clock.now():
            return None
        return row["value"]

    def set(self, key, value, expires_in):
        now = clock.now()
        store.put_auth_state(store.get_db(), key, value, now + expires_in, now=now)

    def delete(self, key):
        store.delete_auth_state(store.get_db(), key)


class WeChatIntegration(FlaskIntegration):
    """Authlib's Flask glue with WeChat-sized state lifetimes."""

    expires_in = STATE_TTL

    def set_state_data(self, session, state, data):
        # Markers of attempts that were never finished would pile up in the cookie.
        self._clear_session_state(session)
        super().set_state_data(session, state, data)


class WeChatOAuth(OAuth):
    """The registry with the integration above."""

    framework_integration_cls = WeChatIntegration


class WeChatApp(FlaskOAuth2App):
    """Authlib's Flask remote app over the WeChat session class."""

    client_cls = WeChatOAuth2Session


def init_app(app):
    """Create the app's registry and register WeChat with the app's client settings."""
    oauth = WeChatOAuth(app, cache=StateCache())
    oauth.register(NAME, client_cls=WeChatApp, **app.extensions[wx.EXTENSION].oauth_settings())


def client():
    """Return the current app's Authlib remote app for WeChat."""
    return current_app.extensions["authlib.integrations.flask_client"].create_client(NAME)


def start(redirect_uri, scope, next_path):
    """Create and remember a new attempt; return WeChat's authorization link."""
    wechat = client()
    rv = wechat.create_authorization_url(redirect_uri, scope=scope)
    wechat.save_authorize_data(
        state=rv["state"], redirect_uri=redirect_uri, next=next_path, scope=scope
    )
    return rv["url"]


def started_here(state):
    """Return True when this browser's session started ``state`` and it is still alive."""
    return client().framework.get_state_data(session, state) is not None


@dataclass
class Attempt:
    """One authorization attempt as the server remembers it."""

    key: str
    next: str
    scope: str
    expired: bool
    wechat_user_id: int | None


def attempt(state):
    """Return the attempt for ``state`` whatever browser asks (None if unknown)."""
    key = state_key(state)
    row = store.get_auth_state(store.get_db(), key)
    if row is None:
        return None
    data = json.loads(row["value"]).get("data", {})  # Authlib's {"data": {...}}
    return Attempt(
        key=key,
        next=data.get("next", "/"),
        scope=data.get("scope", ""),
        expired=row["expires_at"] <= clock.now(),
        wechat_user_id=row["wechat_user_id"],
    )
