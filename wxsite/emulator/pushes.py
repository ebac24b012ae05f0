"""Server push from the emulator: configuration, events, URL checks, replays (/_emu/push)."""

import re
import threading

from flask import Blueprint, current_app

from . import push
from .users import original_id_for
from .web import bad_request, request_json, state, wx_json

bp = Blueprint("pushes", __name__, url_prefix="/_emu/push")

#: Events a fake user's phone can cause (names as WeChat sends them).
EVENT_NAME = re.compile(r"[A-Za-z_]{1,64}")
_FOLLOW_EVENTS = ("subscribe", "unsubscribe")


def push_state():
    """Return the running emulator's :class:`~wxsite.emulator.push.PushState`."""
    return current_app.extensions["wxemu.push"]


def original_id(appid):
    """Return the account's original id (``gh_…``), the ToUserName of its pushes."""
    ids = current_app.config.get("EMU_ORIGINAL_IDS") or {}
    return ids.get(appid) or original_id_for(appid)


def parse_config(data, defaults=None):
    """Return a push.Config from JSON/settings *data*, or an error message."""
    defaults = defaults or {}
    url, token, aes_key = data.get("url"), data.get("token"), data.get("aes_key") or None
    error = push.url_error(url) or push.check_token(token)
    if error:
        return error
    mode = data.get("mode") or (push.SAFE if aes_key else push.PLAINTEXT)
    if mode not in push.MODES:
        return f"mode must be one of {', '.join(push.MODES)}"
    if aes_key is not None or mode != push.PLAINTEXT:
        error = push.check_aes_key(aes_key)
        if error:
            return error if mode == push.PLAINTEXT else f"{mode} mode needs an aes_key: {error}"
    options = {}
    for name, kind, low, high in (
        ("timeout", float, 0.01, 60),
        ("retries", int, 0, 10),
        ("retry_delay", float, 0, 60),
    ):
        value = data.get(name, defaults.get(name))
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return f"{name} must be a number"
        if kind is int and not isinstance(value, int):
            return f"{name} must be an integer"
        if not low <= value <= high:
            return f"{name} must be between {low} and {high}"
        options[name] = kind(value)
    return push.Config(url, token, aes_key, mode, **options)


def configs_from_settings(app):
    """Return {appid: Config} from EMU_PUSH (raise ValueError naming a bad entry)."""
    out = {}
    defaults = {
        "timeout": app.config.get("EMU_PUSH_TIMEOUT"),
        "retries": app.config.get("EMU_PUSH_RETRIES"),
        "retry_delay": app.config.get("EMU_PUSH_RETRY_DELAY"),
    }
    for appid, data in (app.config.get("EMU_PUSH") or {}).items():
        config = parse_config(data, defaults)
        if isinstance(config, str):
            raise ValueError(f"EMU_PUSH[{appid!r}]: {config}")
        out[appid] = config
    return out


def default_options():
    """Return the delivery settings a Config set through the control API starts from."""
    cfg = current_app.config
    return {
        "timeout": cfg.get("EMU_PUSH_TIMEOUT"),
        "retries": cfg.get("EMU_PUSH_RETRIES"),
        "retry_delay": cfg.get("EMU_PUSH_RETRY_DELAY"),
    }


def describe_config(appid):
    """Return one account's push settings as the control API shows them."""
    config = push_state().config(appid)
    out = {"appid": appid, "original_id": original_id(appid)}
    if config is None:
        return {**out, "url": None}
    return {**out, **config.describe()}


def send_event(
    appid,
    user,
    msg_type="event",
    event=None,
    event_key=None,
    ticket=None,
    content=None,
    tamper=None,
    size=push.OVERSIZED,
    age=push.STALE_AGE,
    wait=True,
):
    """Push one event or message from *user* to *appid*; return the Delivery, or None if off."""
    pushes, emu = push_state(), state()
    config = pushes.config(appid)
    if config is None:
        return None
    when = int(emu.now()) - (age if tamper == "stale_timestamp" else 0)
    openid = emu.openid(appid, user)
    fields = push.event_fields(
        original_id(appid),
        openid,
        when,
        msg_type,
        event,
        event_key,
        ticket,
        content,
        emu.next_msg_id() if msg_type != "event" else None,
    )
    other = next((a for a in emu.accounts if a != appid), None)

    def build():
        return push.build(config, appid, fields, when, tamper, size, other)

    delivery = pushes.new_delivery(
        appid=appid,
        url=config.url,
        mode=config.mode,
        kind="tamper" if tamper else "normal",
        xml=push.to_xml(fields),
        push=build(),
        user=user,
        openid=openid,
        msg_type=msg_type,
        event=event,
        tamper=tamper,
    )
    # An attacker's push is sent once; WeChat's own are retried, each retry signed anew.
    options = {"retries": 0} if tamper else {"resign": build}
    _run(lambda: pushes.deliver(delivery, config, **options), wait)
    return delivery


def _run(job, wait):
    if wait:
        job()
    else:
        threading.Thread(target=job, name="wxemu-push", daemon=True).start()


def follow_pushes(user, added, removed):
    """Push subscribe / unsubscribe for a user's follow changes; return the deliveries."""
    out = [send_event(a, user, event="subscribe") for a in added]
    out += [send_event(a, user, event="unsubscribe") for a in removed]
    return [d for d in out if d is not None]


def _answer(delivery, wait=True):
    response = wx_json(delivery.describe())
    if not wait:
        response.status_code = 202
    return response


# -- control API --------------------------------------------------------------------------


@bp.get("/config")
def list_config():
    """Return every account's push settings (url null: push off)."""
    return wx_json([describe_config(a) for a in state().accounts])


@bp.post("/config")
def set_config():
    """Set an account's 服务器配置 (``url`` null switches push off)."""
    data = request_json()
    appid = data.get("appid")
    if appid not in state().accounts:
        return bad_request(f"appid must be one of {list(state().accounts)}")
    if data.get("url") is None:
        push_state().set_config(appid, None)
        return wx_json(describe_config(appid))
    config = parse_config(data, default_options())
    if isinstance(config, str):
        return bad_request(config)
    push_state().set_config(appid, config)
    return wx_json(describe_config(appid))


def _configured(appid):
    """Return (Config, None) or (None, error response) for an appid from the control API."""
    if appid not in state().accounts:
        return None, bad_request(f"appid must be one of {list(state().accounts)}")
    config = push_state().config(appid)
    if config is None:
        return None, bad_request(f"push is not configured for {appid} (POST /_emu/push/config)")
    return config, None


def check_url(appid, config, echostr=None, tamper=None):
    """Do WeChat's URL check (GET with echostr) against *config*; return what happened."""
    echostr = echostr or push.new_echostr()
    when = state().now() - (push.STALE_AGE if tamper == "stale_timestamp" else 0)
    query = push.verification_query(config.token, when, echostr, tamper)
    attempt = push.send("GET", f"{config.url}?{query}", timeout=config.timeout)
    ok = attempt.status == 200 and attempt.answer == echostr
    return {"ok": ok, "appid": appid, "url": config.url, "echostr": echostr, **attempt.describe()}


@bp.post("/verify")
def verify():
    """Do WeChat's URL check and tell whether the site echoed ``echostr``."""
    data = request_json()
    config, error = _configured(data.get("appid"))
    if error:
        return error
    tamper, echostr = data.get("tamper"), data.get("echostr")
    if tamper not in (None, "bad_signature", "stale_timestamp"):
        return bad_request("tamper must be bad_signature or stale_timestamp for a URL check")
    if echostr is not None and (not isinstance(echostr, str) or not echostr):
        return bad_request("echostr must be a non-empty string")
    return wx_json(check_url(data["appid"], config, echostr, tamper))


def parse_event(data):
    """Return send_event's keyword arguments from the control API's JSON, or an error."""
    emu = state()
    appid, user = data.get("appid"), data.get("user")
    if appid not in emu.accounts:
        return f"appid must be one of {list(emu.accounts)}"
    if user not in emu.users:
        return f"user must be one of {list(emu.users)}"
    event, content = data.get("event"), data.get("content")
    msg_type = data.get("msg_type") or ("event" if event is not None or content is None else "text")
    if msg_type not in ("event", "text"):
        return "msg_type must be event or text"
    if msg_type == "event" and (not isinstance(event, str) or not EVENT_NAME.fullmatch(event)):
        return "an event needs its name (subscribe, unsubscribe, SCAN, CLICK, VIEW …)"
    if msg_type == "text" and not isinstance(content, str):
        return "a text message needs content"
    for name in ("event_key", "ticket"):
        if data.get(name) is not None and not isinstance(data[name], str):
            return f"{name} must be a string"
    tamper = data.get("tamper")
    if tamper is not None and tamper not in push.TAMPERS:
        return f"tamper must be one of {', '.join(push.TAMPERS)}"
    config = push_state().config(appid)
    if config is not None and config.mode == push.PLAINTEXT and tamper in push.AES_TAMPERS:
        return f"{tamper} needs compatible or safe mode"
    size, age = data.get("size", push.OVERSIZED), data.get("age", push.STALE_AGE)
    if not _whole(size, 1, 16 << 20) or not _whole(age, 1, 10**8):
        return "size and age must be positive integers (size at most 16 MiB)"
    wait = data.get("wait", True)
    if not isinstance(wait, bool):
        return "wait must be true or false"
    return dict(
        appid=appid,
        user=user,
        msg_type=msg_type,
        event=event if msg_type == "event" else None,
        event_key=data.get("event_key"),
        ticket=data.get("ticket"),
        content=content if msg_type == "text" else None,
        tamper=tamper,
        size=size,
        age=age,
        wait=wait,
    )


def _whole(value, low, high):
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


@bp.post("/event")
def event():
    """Push one event or text message as a fake user (optionally tampered with)."""
    kwargs = parse_event(request_json())
    if isinstance(kwargs, str):
        return bad_request(kwargs)
    _, error = _configured(kwargs["appid"])
    if error:
        return error
    emu = state()
    # The phone's state follows what it says: a subscribe makes a follower.
    if kwargs["event"] == "subscribe" and not kwargs["tamper"]:
        emu.follow(kwargs["user"], kwargs["appid"])
    elif kwargs["event"] == "unsubscribe" and not kwargs["tamper"]:
        emu.unfollow(kwargs["user"], kwargs["appid"])
    return _answer(send_event(**kwargs), kwargs["wait"])


@bp.post("/replay")
def replay():
    """Send a recorded delivery again byte for byte (``id``, default the last one)."""
    data = request_json()
    delivery_id = data.get("id")
    if delivery_id is not None and not _whole(delivery_id, 1, 10**12):
        return bad_request("id must be a delivery id")
    pushes = push_state()
    original = pushes.find(delivery_id)
    if original is None:
        return bad_request("no such delivery")
    config, error = _configured(original.appid)
    if error:
        return error
    copy = pushes.new_delivery(
        appid=original.appid,
        url=original.url,
        mode=original.mode,
        kind="replay",
        xml=original.xml,
        push=original.push,
        user=original.user,
        openid=original.openid,
        msg_type=original.msg_type,
        event=original.event,
        tamper=original.tamper,
        replay_of=original.id,
    )
    pushes.deliver(copy, config, retries=0)
    return wx_json(copy.describe())


@bp.get("/deliveries")
def deliveries():
    """Return every push delivery, oldest first."""
    return wx_json(push_state().describe_deliveries())


@bp.delete("/deliveries")
def clear_deliveries():
    """Forget the push deliveries."""
    push_state().clear_deliveries()
    return wx_json([])
