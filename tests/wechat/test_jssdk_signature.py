"""JS-SDK signing, against WeChat's own worked example (SPEC §4)."""

import re

from wxsite.wechat import jssdk

TICKET = "sM4AOVdWfPE4DxkXGEs8VMCPGGVi4C3VM0P37wVUCFvkVAy_90u5h9nbSlYy3-Sl-HhTdfl2fzFy1AOcHKP7qg"


def test_official_example():
    sig = jssdk.signature(
        TICKET, "Wm3WZYTPz0wzccnW", 1414587457, "http://mp.weixin.qq.com?params=value"
    )
    assert sig == "0f9de62fce790f9a083d5c99e95740ceb90c27ed"


def test_config_drops_fragment_and_signs_fresh_nonce():
    a = jssdk.config(
        "wxappid", TICKET, "https://x.test/p?q=中文#/route", ["updateAppMessageShareData"], now=1
    )
    b = jssdk.config(
        "wxappid", TICKET, "https://x.test/p?q=中文", ["updateAppMessageShareData"], now=1
    )
    assert a["nonceStr"] != b["nonceStr"]
    assert re.fullmatch(r"[A-Za-z0-9]{16}", a["nonceStr"])
    assert a["signature"] == jssdk.signature(TICKET, a["nonceStr"], 1, "https://x.test/p?q=中文")
    assert set(a) == {"appId", "timestamp", "nonceStr", "signature", "jsApiList"}
