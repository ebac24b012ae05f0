"""wxsite: WeChat Official Account web pages with Flask."""


def create_app(config=None):
    """Create the site (see ``wxsite.app``).

    Imported here on the first call: ``import wxsite.emulator`` (or ``wxsite.wechat``) runs
    this file first, and must not load the whole site.
    """
    from .app import create_app as _create_app

    return _create_app(config)
