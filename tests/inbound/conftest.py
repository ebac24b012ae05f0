"""Push tests run in each of WeChat's three modes, on a site configured for it."""

import pytest

from support import site_config
from wxsite import create_app


@pytest.fixture(params=["plaintext", "compatible", "safe"])
def mode(request):
    """The 服务器配置 message mode: 明文, 兼容 or 安全."""
    return request.param


@pytest.fixture
def push_app(tmp_path, emu, mode):
    """Return ``make(token, aes_key, reply)`` building a site that receives pushes in ``mode``."""

    def make(token, aes_key, reply):
        extra = {"WX_PUSH_TOKEN": token, "WX_PUSH_REPLY": reply}
        if mode != "plaintext":
            extra["WX_PUSH_AES_KEY"] = aes_key
        return create_app(site_config(tmp_path, emu, **extra))

    return make
