"""Static files under content-hashed names, which browsers may keep for a year.

Templates link ``{{ asset_url('css/site.css') }}`` → ``/static/css/site.<hash>.css``, the
hash being the first 12 hex digits of the file's SHA-256: a changed file gets a new name,
so the old one can be cached as ``immutable``, and the WeChat browser asks for nothing on
the next page. Every worker and host computes the same name from the same bytes.

The unhashed path (``/static/css/site.css``) still works, revalidated as before. A hashed
name whose hash is not the file's current one (a page rendered before a deploy) gets the
current file without the long lifetime. Names come from the static folder, never from the
request: a hashed name only maps back to a file this module hashed.
"""

import hashlib
import os
import re
from stat import S_ISREG
from urllib.parse import quote

from flask import current_app, request, send_from_directory
from werkzeug.security import safe_join

EXTENSION = "wxsite.assets"
#: What a hashed name is served with: a year, never revalidated.
MAX_AGE = 365 * 86400
IMMUTABLE = f"public, max-age={MAX_AGE}, immutable"
#: How many (script root, file) URLs each process keeps; past that they are made per use.
URL_CACHE_SIZE = 1024
#: ``stem.<12 hex>.ext``: how a hashed name is taken apart.
_HASHED = re.compile(r"(?P<stem>.+)\.(?P<digest>[0-9a-f]{12})(?P<ext>\.[A-Za-z0-9]+)")


class Assets:
    """Hashed names of one static folder, each file hashed once (again when it changes).

    ``check_changes`` (debug mode) looks at each file's size and modification time on
    every use, so an edited stylesheet gets its new name without a restart.
    """

    def __init__(self, folder, url_path="/static", check_changes=False):
        self.folder = folder
        self.url_path = url_path
        self.check_changes = check_changes
        self._names = {}  # filename -> (hashed name, quoted hashed name, (mtime, size))
        self._urls = {}  # (script root, filename) -> URL, unless check_changes

    def hashed(self, filename):
        """Return ``filename``'s hashed name, or ``filename`` itself if it is not a file."""
        entry = self._entry(filename)
        return entry[0] if entry else filename

    def _entry(self, filename):
        entry = self._names.get(filename)
        if entry is not None and not self.check_changes:
            return entry
        path = safe_join(self.folder, filename)  # None for "..", absolute paths and the like
        try:
            stat = os.stat(path)
        except (OSError, TypeError, ValueError):
            return None
        if not S_ISREG(stat.st_mode):
            return None
        version = (stat.st_mtime_ns, stat.st_size)
        if entry is not None and entry[2] == version:
            return entry
        with open(path, "rb") as f:
            digest = hashlib.file_digest(f, "sha256").hexdigest()[:12]
        stem, dot, ext = filename.rpartition(".")
        if not dot or "/" in ext:
            stem, ext = filename, ""
        else:
            ext = "." + ext
        name = f"{stem}.{digest}{ext}"
        entry = self._names[filename] = (name, quote(name), version)
        return entry

    def url(self, filename):
        """Return the URL of ``filename``'s current version (``/static/…<hash>.ext``).

        Each file's URL is made once per script root (the prefix a trusted proxy may
        set), unless ``check_changes`` asks to look at the file every time.
        """
        root = request._get_current_object().root_path  # script_root, without its alias
        url = self._urls.get((root, filename))
        if url is not None:
            return url
        entry = self._entry(filename)
        quoted = entry[1] if entry else quote(filename)
        url = f"{root}{self.url_path}/{quoted}"
        if entry and not self.check_changes and len(self._urls) < URL_CACHE_SIZE:
            self._urls[(root, filename)] = url
        return url

    #: ``{{ asset_urls['css/site.css'] }}``: the same URL, for the pages every request renders
    #: (base.html); a subscript costs a template less than a call (``asset_url(…)``).
    __getitem__ = url

    def original(self, name):
        """Return ``(filename, current)`` for a hashed ``name``, or None if it names no file.

        ``current`` says whether the hash is that of the file as it is now.
        """
        match = _HASHED.fullmatch(name)
        if match is None:
            return None
        filename = match["stem"] + match["ext"]
        entry = self._entry(filename)
        if entry is None:
            return None
        return filename, entry[0] == name


def asset_url(filename):
    """Return the hashed URL of a static file (a template helper: ``asset_url('js/wx.js')``)."""
    return current_app.extensions[EXTENSION].url(filename)


def _serve(filename):
    """Serve a static file: a hashed name with a year's lifetime, any other as Flask does."""
    app = current_app
    found = app.extensions[EXTENSION].original(filename)
    exact = safe_join(app.static_folder, filename)
    if found is None or (exact is not None and os.path.isfile(exact)):
        return app.send_static_file(filename)
    original, current = found
    if not current:
        return app.send_static_file(original)  # an older page's link: revalidated as usual
    response = send_from_directory(app.static_folder, original, max_age=MAX_AGE)
    response.headers["Cache-Control"] = IMMUTABLE
    return response


def init_app(app):
    """Serve hashed names on the static route and give templates ``asset_url``."""
    assets = app.extensions[EXTENSION] = Assets(
        app.static_folder, app.static_url_path, check_changes=app.debug
    )
    app.view_functions["static"] = _serve
    # This app's own: templates call it without looking up current_app.
    app.jinja_env.globals["asset_url"] = assets.url
    app.jinja_env.globals["asset_urls"] = assets
