"""The URL the browser sees, and signed configs over it."""

from urllib.parse import quote, urlsplit

from flask import render_template, request

from .. import wx

_DEFAULT_PORTS = {"http": "80", "https": "443"}

#: What /jssdk/config may sign for (pages that change their URL with pushState), and what
#: a failed page config may list: filled by ``page_apis`` beside each page's view.
SIGNABLE_APIS = set()
PAGE_APIS = set()
#: Open tags (开放标签) a page may list in openTagList; /share uses wx-open-launch-weapp.
KNOWN_TAGS = frozenset(
    ["wx-open-launch-weapp", "wx-open-launch-app", "wx-open-subscribe", "wx-open-audio"]
)


def public_base():
    """Return ``scheme://host[:port]`` as the browser sees it (after trusted proxies)."""
    req = request._get_current_object()
    scheme = req.scheme
    host = req.host
    # ProxyFix appends X-Forwarded-Port even when it is the default; location.href doesn't.
    name, _, port = host.rpartition(":")
    if name and not host.endswith("]") and port == _DEFAULT_PORTS.get(scheme):
        host = name
    return f"{scheme}://{host}"


def public_url():
    """Return the full URL the browser shows: raw path and query, no fragment."""
    req = request._get_current_object()
    env = req.environ
    raw = env.get("RAW_URI") or env.get("REQUEST_URI")
    if raw and raw.startswith("/"):
        target = raw  # exactly as sent: percent-encoding preserved
    else:
        target = quote(env.get("PATH_INFO", "/"), safe="/%:@!$&'()*+,;=~")
        if env.get("QUERY_STRING"):
            target += "?" + env["QUERY_STRING"]
    return public_base() + req.root_path + target.split("#", 1)[0]  # root_path: script_root


def same_site(url):
    """Return True if ``url`` is on this site's public scheme, host and port."""
    parts = urlsplit(url)
    base = urlsplit(public_base())
    return (parts.scheme, parts.netloc) == (base.scheme, base.netloc) and not parts.username


def page_apis(*names, on_demand=True):
    """Declare one page's jsApiList (only what it uses), beside its view; return it.

    ``on_demand``: ``/jssdk/config`` may sign them too (not chooseWXPay: its config comes
    only with the order it pays).
    """
    PAGE_APIS.update(names)
    if on_demand:
        SIGNABLE_APIS.update(names)
    return list(names)


def render_jssdk(template, apis, open_tags=(), **context):
    """Render a JS-SDK page: ``template`` with a fresh ``wx_config`` signed for ``apis``.

    No ``apis``: the page needs no JS-SDK this time (``wx_config`` None, nothing signed).
    """
    config = signed_config(apis, open_tag_list=open_tags) if apis else None
    return render_template(template, wx_config=config, **context)


def signed_config(js_api_list, url=None, open_tag_list=()):
    """Return a fresh ``wx.config`` for the current page (or ``url``), open tags included."""
    return wx.client().jssdk_config(url or public_url(), js_api_list, open_tag_list)
