"""wxsite: WeChat Official Account web pages with Flask."""


def create_app(config=None):
    """Create the site (see ``wxsite.app``); imported lazily so that the emulator and the
    WeChat client can import ``wxsite.wechat`` without loading the whole site."""
    from .app import create_app as _create_app

    return _create_app(config)
