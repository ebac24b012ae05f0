"""All of the emulator's mutable state, under one lock, with a controllable clock.

Nothing here knows about Flask: the blueprints translate :class:`ApiError` into
WeChat's ``{"errcode", "errmsg"}`` bodies.
"""

import base64
import hashlib
import math
import secrets
import string
import threading
import time
from collections import deque
from dataclasses import dataclass, field

from . import wechat_facts as facts
from . import media as media_bytes
from .users import openid_for, subscribe_time_for, unionid_for

# Errcodes and paths the emulator's modules import from here.
APPSECRET_MISSING = facts.APPSECRET_MISSING
DATA_FORMAT_ERROR = facts.DATA_FORMAT_ERROR
INVALID_ARGS = facts.INVALID_ARGS
INVALID_ACTION_INFO = facts.INVALID_ACTION_INFO
#: Parametric QR codes (生成带参数的二维码); showqrcode is mp.weixin.qq.com's, served here too.
QRCODE_CREATE = facts.QRCODE_CREATE
SHOWQRCODE = facts.SHOWQRCODE
QR_TEMPORARY = ("QR_SCENE", "QR_STR_SCENE")
QR_PERMANENT = ("QR_LIMIT_SCENE", "QR_LIMIT_STR_SCENE")
#: expire_seconds when a temporary code is asked for without one, and the most allowed.
QR_DEFAULT_EXPIRY = 60
QR_MAX_EXPIRY = 30 * 24 * 3600

#: Every path that is counted and can be given a fault (WeChat's, plus the JS-SDK's).
FAULT_PATHS = (
    facts.AUTHORIZE,
    facts.SNS_ACCESS_TOKEN,
    facts.SNS_REFRESH_TOKEN,
    facts.SNS_USERINFO,
    facts.SNS_AUTH,
    facts.TOKEN,
    facts.STABLE_TOKEN,
    facts.TICKET,
    facts.USER_INFO,
    facts.MEDIA_UPLOAD,
    facts.MEDIA_GET,
    facts.MEDIA_GET_JSSDK,
    QRCODE_CREATE,
    SHOWQRCODE,
    "/_emu/jssdk/verify",
    "/_emu/jssdk/upload",
)

#: Paths whose answer a fault may resize (``size``): the media downloads.
MEDIA_PATHS = (facts.MEDIA_GET, facts.MEDIA_GET_JSSDK)

#: Events kept for /_emu/events; older ones are dropped so a long session stays small.
MAX_EVENTS = 10_000
#: Shaped answers kept for /_emu/deliveries.
MAX_DELIVERIES = 1_000
#: How long after expiry a credential is still remembered (to answer "expired").
_FORGET_AFTER = 24 * 3600
_ALNUM = string.ascii_letters + string.digits


class ApiError(Exception):
    """A WeChat API error, answered as HTTP 200 with errcode/errmsg."""

    def __init__(self, errcode, errmsg=None):
        self.errcode = errcode
        self.errmsg = errmsg or facts.ERRMSG.get(errcode, "")
        super().__init__(f"{self.errcode} {self.errmsg}")

    def body(self):
        """Return the JSON body WeChat would send."""
        return {"errcode": self.errcode, "errmsg": self.errmsg}


def _random(length, alphabet=_ALNUM):
    return "".join(secrets.choice(alphabet) for _ in range(length))


def _token_value(length):
    # WeChat credentials look like "90_" + URL-safe characters; mimic the shape and length.
    return (f"{secrets.randbelow(90) + 10}_" + secrets.token_urlsafe(length))[:length]


@dataclass
class Credential:
    """A token or ticket: good until it expires or is superseded/revoked."""

    value: str
    appid: str
    expires_at: float
    #: Set earlier than expires_at when superseded (grace) or revoked (now).
    valid_until: float = math.inf
    kind: str = ""

    def error_at(self, now):
        """Return the errcode a call with this credential gets at *now*, or None."""
        if now >= self.valid_until:
            return facts.INVALID_CREDENTIAL
        if now >= self.expires_at:
            return facts.ACCESS_TOKEN_EXPIRED
        return None


@dataclass
class Code:
    """An authorization code, bound to (appid, user, scope)."""

    appid: str
    user: str
    scope: str
    expires_at: float
    used: bool = False
    #: Issued in snapshot-page mode (快照页): exchanged for a virtual identity.
    snapshot: bool = False


@dataclass
class WebGrant:
    """A web (sns) access_token or refresh_token and who it speaks for."""

    value: str
    appid: str
    user: str
    scope: str
    expires_at: float
    #: Snapshot-page grants speak for a virtual openid / unionid, not the user's own.
    snapshot: bool = False
    virtual_openid: str | None = None
    virtual_unionid: str | None = None


@dataclass
class Media:
    """Temporary media as WeChat keeps it for three days."""

    media_id: str
    kind: str
    data: bytes
    content_type: str
    created_at: float
    #: None: any account may download it (media seeded by tests).
    appid: str | None = None
    duration_ms: int = 0
    #: Voice: the bytes media/get/jssdk answers (None: made up from the duration).
    speex: bytes | None = None


@dataclass
class QrCode:
    """A parametric QR code: its ticket, scene, and (temporary codes) expiry."""

    ticket: str
    #: Short id in the code's ``url`` (the emulator's scan page).
    code: str
    appid: str
    action_name: str
    scene_id: int | None
    scene_str: str | None
    created_at: float
    #: None for permanent codes.
    expires_at: float | None

    @property
    def scene(self):
        """Return the scene as EventKey carries it (scene_str, or scene_id in digits)."""
        return self.scene_str if self.scene_str is not None else str(self.scene_id)

    def expired(self, now):
        """Tell whether the code can no longer be scanned at *now*."""
        return self.expires_at is not None and now >= self.expires_at

    def describe(self, now):
        """Return the code as the control API lists it."""
        return {
            "ticket": self.ticket,
            "appid": self.appid,
            "action_name": self.action_name,
            "scene": self.scene,
            "scene_id": self.scene_id,
            "scene_str": self.scene_str,
            "expires_at": self.expires_at,
            "expired": self.expired(now),
        }


@dataclass
class Fault:
    """What the next ``count`` calls of ``path`` get instead of a normal answer."""

    path: str
    count: int = 1
    errcode: int | None = None
    errmsg: str | None = None
    status: int | None = None
    stall: float | None = None
    body: str | None = None
    content_type: str = "application/json"
    #: Seconds between pieces of ``drip_bytes`` bytes of the answer's body.
    drip: float | None = None
    drip_bytes: int = 1
    #: Send the answer without Content-Length (chunked transfer encoding).
    chunked: bool = False
    #: Media paths: make the media answer exactly this many bytes (cut or zero-padded).
    size: int | None = None
    seq: int = field(default=0, compare=False)

    @property
    def shapes_body(self):
        """True when the answer's body is sent differently (dripped, chunked, resized)."""
        return self.drip is not None or self.chunked or self.size is not None

    def describe(self):
        """Return the fault as the JSON object the control API shows."""
        out = {"path": self.path, "count": self.count}
        for name in ("errcode", "errmsg", "status", "stall", "body", "drip", "size"):
            if getattr(self, name) is not None:
                out[name] = getattr(self, name)
        if self.body is not None:
            out["content_type"] = self.content_type
        if self.drip is not None:
            out["drip_bytes"] = self.drip_bytes
        if self.chunked:
            out["chunked"] = True
        return out


@dataclass
class Delivery:
    """How far the emulator got sending one answer shaped by a fault."""

    path: str
    #: Bytes the body was to have, None when unknown.
    length: int | None
    sent: int = 0
    #: "sending", then "done", or "cut" when the caller went away first.
    state: str = "sending"

    def describe(self):
        """Return the delivery as the JSON object the control API shows."""
        return {"path": self.path, "length": self.length, "sent": self.sent, "state": self.state}


class EmulatorState:
    """The emulator's memory: one instance per emulator app, every method thread-safe."""

    def __init__(self, accounts, users, grace, fixed_ticket=None, real_speex=False):
        self.lock = threading.RLock()
        self.default_real_speex = real_speex
        self.accounts = dict(accounts)
        self.users = {u.key: u for u in users}
        self.grace = grace
        self.fixed_ticket = fixed_ticket
        self._openids = {
            (appid, u.key): openid_for(appid, u.key) for appid in self.accounts for u in users
        }
        self._by_openid = {(a, o): k for (a, k), o in self._openids.items()}
        self.reset()

    # -- clock and reset -------------------------------------------------------------

    def now(self):
        """Return the emulator's time: the wall clock plus the controllable offset."""
        return time.time() + self.offset

    def set_clock(self, advance=None, offset=None):
        """Move the clock forward by *advance* seconds or set its *offset*."""
        with self.lock:
            if offset is not None:
                self.offset = float(offset)
            if advance is not None:
                self.offset += float(advance)
            return {"now": self.now(), "offset": self.offset}

    def reset(self):
        """Forget everything that happened since start-up."""
        with self.lock:
            self.offset = 0.0
            #: media/get/jssdk makes up real wideband speex (else the marked stand-in).
            self.real_speex = self.default_real_speex
            self.tokens = {}  # value -> Credential (global access tokens)
            self.stable = {}  # appid -> Credential (the current stable token)
            self.tickets = {}  # appid -> [Credential]
            self.codes = {}
            self.web_tokens = {}
            self.refresh_tokens = {}
            self.media = {}
            self.faults = []
            self.counters = {}
            self.events = deque(maxlen=MAX_EVENTS)
            self.deliveries = deque(maxlen=MAX_DELIVERIES)
            self._fault_seq = 0
            self.follows = {
                u.key: {a: subscribe_time_for(i) for a in u.follows if a in self.accounts}
                for i, u in enumerate(self.users.values())
            }
            self.follow_scenes = {}  # (user, appid) -> the QrCode they followed through
            self.snapshots = {}  # user -> appid (None: any) whose next userinfo code is a snapshot
            self.qrcodes = {}  # ticket -> QrCode
            self.msg_seq = 0

    # -- accounts and users -----------------------------------------------------------

    def check_app(self, appid, secret=None, check_secret=False):
        """Raise the errcode WeChat gives for a missing/unknown appid or a wrong secret."""
        if not appid:
            raise ApiError(facts.MISSING_APPID)
        if appid not in self.accounts:
            raise ApiError(facts.INVALID_APPID)
        if check_secret:
            if not secret:
                raise ApiError(APPSECRET_MISSING)
            if not secrets.compare_digest(secret, self.accounts[appid]):
                raise ApiError(facts.INVALID_APPSECRET)

    def openid(self, appid, key):
        """Return the openid of user *key* under *appid*."""
        return self._openids[(appid, key)]

    def unionid(self, key):
        """Return the unionid of user *key*, or None."""
        return unionid_for(self.users[key])

    def user_by_openid(self, appid, openid):
        """Return the user key behind *openid* under *appid*, or raise 40003."""
        key = self._by_openid.get((appid, openid or ""))
        if key is None:
            raise ApiError(facts.INVALID_OPENID)
        return key

    def follow_time(self, key, appid):
        """Return when user *key* followed *appid*, or None if they don't follow it."""
        with self.lock:
            return self.follows.get(key, {}).get(appid)

    def set_follows(self, key, appids):
        """Make user *key* follow exactly *appids*; return (appids followed, unfollowed)."""
        with self.lock:
            old = self.follows.get(key, {})
            now = int(self.now())
            self.follows[key] = {a: old.get(a, now) for a in appids}
            added = [a for a in self.follows[key] if a not in old]
            removed = [a for a in old if a not in self.follows[key]]
            for appid in removed:
                self.follow_scenes.pop((key, appid), None)
            return added, removed

    def follow(self, key, appid, qrcode=None):
        """Make user *key* follow *appid* (through *qrcode* if given); False if they already do."""
        with self.lock:
            follows = self.follows.setdefault(key, {})
            if appid in follows:
                return False
            follows[appid] = int(self.now())
            if qrcode is not None:
                self.follow_scenes[(key, appid)] = qrcode
            return True

    def unfollow(self, key, appid):
        """Make user *key* stop following *appid*; False if they did not follow it."""
        with self.lock:
            self.follow_scenes.pop((key, appid), None)
            return self.follows.get(key, {}).pop(appid, None) is not None

    def follow_scene(self, key, appid):
        """Return the QrCode through which user *key* followed *appid*, or None."""
        with self.lock:
            return self.follow_scenes.get((key, appid))

    def describe_users(self):
        """Return every user as the control API lists them."""
        with self.lock:
            return [
                {
                    "key": u.key,
                    "nickname": u.nickname,
                    "unionid": unionid_for(u),
                    "openids": {a: self.openid(a, u.key) for a in self.accounts},
                    "follows": [a for a in self.accounts if a in self.follows.get(u.key, {})],
                    "language": u.language,
                    "note": u.note,
                }
                for u in self.users.values()
            ]

    # -- global access tokens ------------------------------------------------------------

    def _prune(self, now):
        # Remember dead credentials a day so late callers get "expired", then forget them.
        horizon = now - _FORGET_AFTER
        for table in (self.tokens, self.codes, self.web_tokens, self.refresh_tokens):
            for value in [v for v, c in table.items() if c.expires_at < horizon]:
                del table[value]

    def _new_token(self, appid, kind, now):
        token = Credential(_token_value(136), appid, now + facts.TOKEN_LIFETIME, kind=kind)
        self.tokens[token.value] = token
        return token

    def classic_token(self, appid):
        """Issue a new classic token; the appid's earlier classic ones die after the grace."""
        with self.lock:
            now = self.now()
            self._prune(now)
            for old in self.tokens.values():
                if old.appid == appid and old.kind == "classic":
                    old.valid_until = min(old.valid_until, now + self.grace)
            token = self._new_token(appid, "classic", now)
            return token.value, facts.TOKEN_LIFETIME

    def stable_token(self, appid, force_refresh=False):
        """Return the appid's stable token (new if none, dead, or *force_refresh*)."""
        with self.lock:
            now = self.now()
            current = self.stable.get(appid)
            if current is not None and current.error_at(now) is None and not force_refresh:
                return current.value, int(current.expires_at - now)
            if current is not None:
                current.valid_until = min(current.valid_until, now + self.grace)
            self._prune(now)
            token = self._new_token(appid, "stable", now)
            self.stable[appid] = token
            return token.value, facts.TOKEN_LIFETIME

    def token_appid(self, value):
        """Return the appid a global access_token belongs to, or raise its errcode."""
        if not value:
            raise ApiError(facts.MISSING_ACCESS_TOKEN)
        with self.lock:
            token = self.tokens.get(value)
            if token is None:
                raise ApiError(facts.INVALID_CREDENTIAL)
            errcode = token.error_at(self.now())
            if errcode:
                raise ApiError(errcode)
            return token.appid

    def revoke_tokens(self, appid):
        """Invalidate every global access_token of *appid* now; return how many."""
        with self.lock:
            now = self.now()
            live = [t for t in self.tokens.values() if t.appid == appid and t.error_at(now) is None]
            for token in live:
                token.valid_until = now
            return len(live)

    # -- jsapi_ticket --------------------------------------------------------------------

    def issue_ticket(self, appid):
        """Issue a jsapi_ticket; the appid's earlier tickets verify only for the grace."""
        with self.lock:
            now = self.now()
            tickets = self.tickets.setdefault(appid, [])
            tickets[:] = [t for t in tickets if t.error_at(now) is None]
            for old in tickets:
                old.valid_until = min(old.valid_until, now + self.grace)
            value = self.fixed_ticket or secrets.token_urlsafe(64)
            tickets.append(Credential(value, appid, now + facts.TICKET_LIFETIME, kind="jsapi"))
            return value, facts.TICKET_LIFETIME

    def signature_matches(self, appid, noncestr, timestamp, url, signature):
        """Tell whether *signature* is right for any ticket of *appid* still valid."""
        with self.lock:
            now = self.now()
            values = [t.value for t in self.tickets.get(appid, ()) if t.error_at(now) is None]
        wanted = (signature or "").lower()
        for ticket in values:
            plain = f"jsapi_ticket={ticket}&noncestr={noncestr}&timestamp={timestamp}&url={url}"
            if secrets.compare_digest(hashlib.sha1(plain.encode()).hexdigest(), wanted):
                return True
        return False

    # -- web authorization ---------------------------------------------------------------

    def issue_code(self, appid, user, scope, snapshot=False):
        """Return a new single-use code for (appid, user, scope), a snapshot one if asked."""
        with self.lock:
            now = self.now()
            self._prune(now)
            code = _random(32)
            self.codes[code] = Code(
                appid, user, scope, now + facts.CODE_LIFETIME, snapshot=snapshot
            )
            return code

    def arm_snapshot(self, user, appid=None):
        """Make *user*'s next snsapi_userinfo authorization (of *appid*, or any) a snapshot one."""
        with self.lock:
            self.snapshots[user] = appid

    def snapshot_armed(self, user, appid):
        """Tell whether *user*'s next snsapi_userinfo authorization of *appid* is a snapshot."""
        with self.lock:
            return user in self.snapshots and self.snapshots[user] in (None, appid)

    def take_snapshot(self, user, appid):
        """Disarm and return True if *user*'s authorization of *appid* is to be a snapshot."""
        with self.lock:
            armed = self.snapshot_armed(user, appid)
            if armed:
                del self.snapshots[user]
            return armed

    def describe_snapshots(self):
        """Return the armed snapshot authorizations."""
        with self.lock:
            return [{"user": u, "appid": a} for u, a in self.snapshots.items()]

    def exchange_code(self, appid, value):
        """Spend a code; return (web access grant, refresh grant) or raise its errcode."""
        if not value:
            raise ApiError(facts.MISSING_CODE)
        with self.lock:
            now = self.now()
            code = self.codes.get(value)
            if code is None or code.appid != appid:
                raise ApiError(facts.INVALID_CODE)
            if code.used:
                raise ApiError(facts.CODE_USED)
            if now >= code.expires_at:
                raise ApiError(facts.INVALID_CODE)
            code.used = True
            refresh = WebGrant(
                _token_value(110),
                appid,
                code.user,
                code.scope,
                now + facts.REFRESH_TOKEN_LIFETIME,
            )
            if code.snapshot:
                # A virtual account: new ids each time, shaped like real ones.
                refresh.snapshot = True
                refresh.virtual_openid = "o" + secrets.token_urlsafe(21)[:27]
                if self.unionid(code.user):
                    refresh.virtual_unionid = "o" + secrets.token_urlsafe(21)[:27]
            self.refresh_tokens[refresh.value] = refresh
            return self._new_web_token(refresh, now), refresh

    def _new_web_token(self, refresh, now):
        grant = WebGrant(
            _token_value(110),
            refresh.appid,
            refresh.user,
            refresh.scope,
            now + facts.TOKEN_LIFETIME,
            refresh.snapshot,
            refresh.virtual_openid,
            refresh.virtual_unionid,
        )
        self.web_tokens[grant.value] = grant
        return grant

    def refresh_web_token(self, appid, value):
        """Return (new web access grant, refresh grant) for a refresh_token."""
        with self.lock:
            now = self.now()
            refresh = self.refresh_tokens.get(value or "")
            if refresh is None or refresh.appid != appid:
                raise ApiError(facts.INVALID_REFRESH_TOKEN)
            if now >= refresh.expires_at:
                raise ApiError(facts.REFRESH_TOKEN_EXPIRED)
            return self._new_web_token(refresh, now), refresh

    def web_grant(self, value, openid):
        """Return the grant of a web access_token used for *openid*, or raise."""
        if not value:
            raise ApiError(facts.MISSING_ACCESS_TOKEN)
        with self.lock:
            grant = self.web_tokens.get(value)
            if grant is None:
                raise ApiError(facts.INVALID_CREDENTIAL)
            if self.now() >= grant.expires_at:
                raise ApiError(facts.ACCESS_TOKEN_EXPIRED)
        if openid != self.grant_openid(grant):
            raise ApiError(facts.INVALID_OPENID)
        return grant

    def grant_openid(self, grant):
        """Return the openid a web grant speaks for (virtual for snapshot grants)."""
        return grant.virtual_openid or self.openid(grant.appid, grant.user)

    def grant_unionid(self, grant):
        """Return the unionid a web grant reports (virtual for snapshot grants), or None."""
        return grant.virtual_unionid if grant.snapshot else self.unionid(grant.user)

    # -- parametric QR codes ---------------------------------------------------------------

    def create_qrcode(self, appid, action_name, scene_id, scene_str, expire_seconds):
        """Return a new QrCode (a permanent one asked for again: the same code)."""
        with self.lock:
            now = self.now()
            if action_name in QR_PERMANENT:
                for qr in self.qrcodes.values():
                    if (qr.appid, qr.action_name, qr.scene_id, qr.scene_str) == (
                        appid,
                        action_name,
                        scene_id,
                        scene_str,
                    ):
                        return qr
                expires_at = None
            else:
                expires_at = now + expire_seconds
            # Shaped like WeChat's: base64 of binary starting "gQ", ending "=" (so callers
            # must URL-encode it for showqrcode).
            ticket = base64.b64encode(b"\x81\x01" + secrets.token_bytes(48)).decode("ascii")
            qr = QrCode(
                ticket,
                secrets.token_urlsafe(16),
                appid,
                action_name,
                scene_id,
                scene_str,
                now,
                expires_at,
            )
            self.qrcodes[ticket] = qr
            # Forget codes that expired a day ago so a long session stays small.
            horizon = now - _FORGET_AFTER
            for old in [q for q in self.qrcodes.values() if (q.expires_at or now) < horizon]:
                del self.qrcodes[old.ticket]
            return qr

    def qrcode(self, ticket=None, code=None):
        """Return the QrCode of *ticket* (or of its url's *code*), expired or not, or None."""
        with self.lock:
            if ticket is not None:
                return self.qrcodes.get(ticket)
            return next((q for q in self.qrcodes.values() if q.code == code), None)

    def describe_qrcodes(self):
        """Return every QR code, oldest first."""
        with self.lock:
            now = self.now()
            return [q.describe(now) for q in self.qrcodes.values()]

    def next_msg_id(self):
        """Return a new MsgId: 19 digits, like WeChat's."""
        with self.lock:
            self.msg_seq += 1
            return 6_000_000_000_000_000_000 + int(self.now()) * 10_000 + self.msg_seq % 10_000

    # -- media ---------------------------------------------------------------------------

    def add_media(self, kind, data, content_type, appid=None, duration_ms=0, speex=None):
        """Keep *data* as temporary media and return its media_id."""
        with self.lock:
            media_id = secrets.token_urlsafe(48)
            self.media[media_id] = Media(
                media_id, kind, data, content_type, self.now(), appid, duration_ms, speex
            )
            # Drop media past its lifetime so big uploads don't pile up in memory.
            horizon = self.now() - facts.MEDIA_LIFETIME - _FORGET_AFTER
            for old in [m for m in self.media.values() if m.created_at < horizon]:
                del self.media[old.media_id]
            return media_id, self.media[media_id].created_at

    def get_media(self, media_id, appid=None):
        """Return live media *media_id* downloadable by *appid*, or raise 40007."""
        if not media_id:
            raise ApiError(facts.MISSING_MEDIA_ID)
        with self.lock:
            item = self.media.get(media_id)
            now = self.now()
        if item is None or now >= item.created_at + facts.MEDIA_LIFETIME:
            raise ApiError(facts.INVALID_MEDIA_ID)
        if appid is not None and item.appid not in (None, appid):
            raise ApiError(facts.INVALID_MEDIA_ID)
        return item

    def attach_speex(self, media_id, data):
        """Make voice *media_id*'s media/get/jssdk answer *data*; raise 40007 if not voice."""
        with self.lock:
            item = self.get_media(media_id)
            if item.kind != "voice":
                raise ApiError(facts.INVALID_MEDIA_ID)
            item.speex = bytes(data)
            return item

    # -- faults, counters, events --------------------------------------------------------

    def add_fault(self, fault):
        """Queue *fault* behind the ones already queued."""
        with self.lock:
            self._fault_seq += 1
            fault.seq = self._fault_seq
            self.faults.append(fault)
            return fault

    def clear_faults(self):
        """Drop every queued fault."""
        with self.lock:
            self.faults.clear()

    def describe_faults(self):
        """Return the queued faults, first to apply first."""
        with self.lock:
            return [f.describe() for f in self.faults]

    def hit(self, path):
        """Count a call of *path* and return the fault it must get, if any."""
        with self.lock:
            self.counters[path] = self.counters.get(path, 0) + 1
            for fault in self.faults:
                if fault.path == path:
                    if fault.count > 0:
                        fault.count -= 1
                        if fault.count == 0:
                            self.faults.remove(fault)
                    return fault
            return None

    def add_delivery(self, path, length):
        """Start recording how a shaped answer of *path* goes out; return its Delivery."""
        delivery = Delivery(path, length)
        with self.lock:
            self.deliveries.append(delivery)
        return delivery

    def describe_deliveries(self):
        """Return the shaped answers, oldest first."""
        with self.lock:
            return [d.describe() for d in self.deliveries]

    def clear_deliveries(self):
        """Forget the shaped answers."""
        with self.lock:
            self.deliveries.clear()

    def describe_counters(self):
        """Return calls per path, every known path included (0 if never called)."""
        with self.lock:
            out = {path: 0 for path in FAULT_PATHS}
            out.update(self.counters)
            return out

    def reset_counters(self):
        """Set every counter back to zero."""
        with self.lock:
            self.counters.clear()

    def add_event(self, event):
        """Record one JS-SDK event, stamped with the emulator's clock."""
        with self.lock:
            event = dict(event, ts=self.now())
            self.events.append(event)
            return event

    def list_events(self):
        """Return the recorded JS-SDK events, oldest first."""
        with self.lock:
            return list(self.events)

    def clear_events(self):
        """Forget the recorded JS-SDK events."""
        with self.lock:
            self.events.clear()


def voice_media(duration_ms):
    """Return (AMR bytes, duration) for a JS-SDK recording of *duration_ms*."""
    duration = max(0, min(int(duration_ms), media_bytes.VOICE_LIMIT_MS))
    data = media_bytes.amr_nb(duration)
    return data, media_bytes.amr_duration_ms(data)
