"""The emulator's fake WeChat users and the identifiers WeChat would give them."""

import base64
import hashlib
from dataclasses import dataclass, field
from html import escape

from . import wechat_facts as facts

# Salts for the identifier hashes: fixed so openids/unionids are stable across runs,
# and different per kind so an openid can never equal a unionid.
_OPENID_SALT = "wxemu-openid"
_UNIONID_SALT = "wxemu-unionid"

_AVATAR_COLORS = ("#07c160", "#10aeff", "#fa9d3b", "#fa5151", "#6467f0", "#2bad9d")


@dataclass(frozen=True)
class FakeUser:
    """One fake WeChat user, as the emulator's phone "owner" can pick them."""

    key: str
    nickname: str
    #: Appids the user follows after a reset.
    follows: tuple = ()
    #: False for users whose WeChat is not bound to the Open Platform account.
    has_unionid: bool = True
    language: str = "zh_CN"
    #: Shown in the emulator's pages only; WeChat no longer returns sex/region (2021).
    note: str = field(default="", compare=False)


DEFAULT_USERS = (
    FakeUser("zhangsan", "张三", follows=(facts.EMULATOR_APPID,), note="follows app 1"),
    FakeUser("lisi", "李四", note="follows nobody"),
    FakeUser(
        "wangwu",
        "王五 · Émile 🌟",
        follows=(facts.EMULATOR_APPID,),
        has_unionid=False,
        note="follows app 1, no unionid",
    ),
    FakeUser("zhaoliu", "赵六", follows=(facts.EMULATOR_APPID_2,), note="follows app 2"),
    FakeUser(
        "sunqi",
        "孙七",
        follows=(facts.EMULATOR_APPID, facts.EMULATOR_APPID_2),
        language="en",
        note="follows both",
    ),
    FakeUser("zhouba", "周八 <b>&\"'", note="markup in nickname, follows nobody"),
)


def _digest_id(*parts):
    """Return "o" + 27 URL-safe characters derived from *parts*, shaped like WeChat's ids."""
    raw = hashlib.sha256(":".join(parts).encode()).digest()
    return "o" + base64.urlsafe_b64encode(raw).decode()[:27]


def openid_for(appid, key):
    """Return the openid the user *key* has under *appid*."""
    return _digest_id(_OPENID_SALT, appid, key)


def unionid_for(user):
    """Return the user's unionid, or None when they are not on the Open Platform."""
    return _digest_id(_UNIONID_SALT, user.key) if user.has_unionid else None


def subscribe_time_for(index):
    """Return a stable, plausible subscribe_time for the *index*-th default user."""
    return 1_700_000_000 + index * 86_400


def avatar_svg(user):
    """Return an SVG avatar: the nickname's first character on a coloured disc."""
    color = _AVATAR_COLORS[int(hashlib.sha256(user.key.encode()).hexdigest(), 16) % 6]
    initial = escape(user.nickname[:1] or "?")
    return (
        '<svg xmlns="http://www.w3.org/2000/svg" width="132" height="132" '
        'viewBox="0 0 132 132">'
        f'<circle cx="66" cy="66" r="62" fill="{color}"/>'
        '<text x="66" y="66" dy="0.35em" text-anchor="middle" font-size="64" '
        'font-family="PingFang SC, Noto Sans CJK SC, Microsoft YaHei, sans-serif" '
        f'fill="#fff">{initial}</text></svg>'
    )


def original_id_for(appid):
    """Return a stable original id (原始ID, ``gh_`` + 12 hex digits) for *appid*."""
    return "gh_" + hashlib.sha256(f"wxemu-gh:{appid}".encode()).hexdigest()[:12]
