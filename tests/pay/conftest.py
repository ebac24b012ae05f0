"""A refund admin's site, shared by the /pay/admin tests."""

import pytest

from support import LiveServer, site_config, wechat_login
from wxsite import accounts, create_app, store


@pytest.fixture
def boss(tmp_path, emu, phone):
    """Return ``(app, live)`` whose refund admin is the account "boss"; ``phone`` is logged
    in there (not yet bound)."""
    app = create_app(site_config(tmp_path, emu, WXPAY_ADMINS="boss"))
    with app.app_context():
        accounts.create(store.get_db(), "boss", "a long password")
    live = LiveServer(app)
    wechat_login(phone, live)
    yield app, live
    live.shutdown()
