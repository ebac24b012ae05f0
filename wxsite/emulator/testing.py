"""A client for the emulator's control API, for this project's tests (stdlib only)."""

import json
import time
import urllib.error
import urllib.request
from http.cookies import SimpleCookie
from urllib.parse import unquote, urlencode, urlsplit

from . import wechat_facts as facts


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


class Control:
    """Drive a running emulator over HTTP: faults, clock, users, media, push, QR codes, Pay."""

    def __init__(self, base_url, timeout=10):
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self._opener = urllib.request.build_opener(_NoRedirect)

    def request(self, method, path, body=None, headers=None):
        """Send a request to the emulator; return (status, headers, body bytes)."""
        url = path if "://" in path else self.base_url + path
        request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
        try:
            with self._opener.open(request, timeout=self.timeout) as response:
                return response.status, response.headers, response.read()
        except urllib.error.HTTPError as error:
            return error.code, error.headers, error.read()

    def call(self, method, path, payload=None):
        """Send JSON to a control endpoint and return its JSON answer (raise on 4xx/5xx)."""
        body = None if payload is None else json.dumps(payload).encode()
        headers = {"Content-Type": "application/json"} if body is not None else {}
        status, _, data = self.request(method, "/_emu" + path, body, headers)
        if status >= 400:
            raise AssertionError(f"{method} /_emu{path} -> {status}: {data[:500]!r}")
        return json.loads(data)

    def reset(self):
        """Forget everything the emulator remembers."""
        return self.call("POST", "/reset")

    def counters(self):
        """Return calls per WeChat path."""
        return self.call("GET", "/counters")

    def reset_counters(self):
        """Set the counters to zero."""
        return self.call("DELETE", "/counters")

    def fault(self, path, count=1, **kind):
        """Make the next *count* calls of *path* fail.

        Kinds: errcode=, status=, stall=, body=; the body shapes drip= (with drip_bytes=),
        chunked=True and size= (media paths) go alone or with any of them.
        """
        return self.call("POST", "/faults", dict(path=path, count=count, **kind))

    def deliveries(self, path=None):
        """Return the answers shaped by a fault (only those of *path* if given), oldest first."""
        found = self.call("GET", "/deliveries")
        return [d for d in found if path is None or d["path"] == path]

    def settled_delivery(self, path, timeout=10.0):
        """Return the last shaped answer of *path* once it is done or cut (or at *timeout*)."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.deliveries(path)
            if found and (found[-1]["state"] != "sending" or time.monotonic() > deadline):
                return found[-1]
            if not found and time.monotonic() > deadline:
                raise AssertionError(f"no shaped answer of {path}")
            time.sleep(0.05)

    def faults(self):
        """Return the queued faults."""
        return self.call("GET", "/faults")

    def clear_faults(self):
        """Drop the queued faults."""
        return self.call("DELETE", "/faults")

    def clock(self):
        """Return {"now", "offset"}."""
        return self.call("GET", "/clock")

    def advance(self, seconds):
        """Move the emulator's clock forward."""
        return self.call("POST", "/clock", {"advance": seconds})

    def users(self):
        """Return the fake users keyed by their key."""
        return {u["key"]: u for u in self.call("GET", "/users")}

    def set_follows(self, user, appids):
        """Make *user* follow exactly *appids*."""
        return self.call("POST", f"/users/{user}", {"follows": list(appids)})

    def revoke(self, appid=facts.EMULATOR_APPID):
        """Invalidate every current global access_token of *appid*."""
        return self.call("POST", "/tokens/revoke", {"appid": appid})

    def add_media(self, data, type="image", content_type="image/jpeg", appid=None, speex=None):
        """Store *data* as media and return its media_id.

        *speex*: True when *data* is the HD voice itself (the AMR is made up), or bytes that
        media/get/jssdk answers for the voice *data*.
        """
        params = {"type": type, **({"appid": appid} if appid else {})}
        if speex is True:
            params["speex"] = "1"
        status, _, body = self.request(
            "POST", f"/_emu/media?{urlencode(params)}", data, {"Content-Type": content_type}
        )
        if status != 200:
            raise AssertionError(f"POST /_emu/media -> {status}: {body[:500]!r}")
        media_id = json.loads(body)["media_id"]
        if isinstance(speex, (bytes, bytearray)):
            status, _, body = self.request("POST", f"/_emu/media/{media_id}/speex", bytes(speex))
            if status != 200:
                raise AssertionError(f"POST /_emu/media/…/speex -> {status}: {body[:500]!r}")
        return media_id

    def real_speex(self, real=True):
        """Make made-up HD voice real WeChat-framed speex (True) or the marked stand-in."""
        return self.call("POST", "/speex", {"real": real})

    def events(self, api=None):
        """Return the recorded JS-SDK events (only those of *api* if given)."""
        events = self.call("GET", "/events")
        return [e for e in events if api is None or e["api"] == api]

    def clear_events(self):
        """Forget the recorded JS-SDK events."""
        return self.call("DELETE", "/events")

    def snapshot(self, user="zhangsan", appid=None):
        """Make *user*'s next snsapi_userinfo authorization a snapshot page (is_snapshotuser 1)."""
        return self.call("POST", "/snapshot", {"user": user, "appid": appid})

    # -- server push --------------------------------------------------------------------

    def push_config(self, url, token, aes_key=None, mode=None, appid=facts.EMULATOR_APPID, **opts):
        """Set *appid*'s 服务器配置 (url None switches push off); opts: timeout, retries, retry_delay."""
        body = {"appid": appid, "url": url, "token": token, "aes_key": aes_key, **opts}
        if mode is not None:
            body["mode"] = mode
        return self.call("POST", "/push/config", body)

    def push_configs(self):
        """Return every account's push settings keyed by appid."""
        return {c["appid"]: c for c in self.call("GET", "/push/config")}

    def push_verify(self, appid=facts.EMULATOR_APPID, **kwargs):
        """Do WeChat's URL check (kwargs: echostr, tamper); return {"ok", "status", "answer", …}."""
        return self.call("POST", "/push/verify", {"appid": appid, **kwargs})

    def push_event(self, event, user="zhangsan", appid=facts.EMULATOR_APPID, **kwargs):
        """Push an event as *user* (kwargs: event_key, ticket, tamper, size, age, wait)."""
        return self.call(
            "POST", "/push/event", {"appid": appid, "user": user, "event": event, **kwargs}
        )

    def push_text(self, content, user="zhangsan", appid=facts.EMULATOR_APPID, **kwargs):
        """Push a text message as *user* (kwargs as push_event)."""
        body = {"appid": appid, "user": user, "msg_type": "text", "content": content, **kwargs}
        return self.call("POST", "/push/event", body)

    def push_replay(self, delivery_id=None):
        """Send a recorded push again byte for byte (default: the last one)."""
        return self.call("POST", "/push/replay", {} if delivery_id is None else {"id": delivery_id})

    def push_deliveries(self):
        """Return every push delivery, oldest first."""
        return self.call("GET", "/push/deliveries")

    def clear_push_deliveries(self):
        """Forget the push deliveries."""
        return self.call("DELETE", "/push/deliveries")

    def qrcode(self, scene, appid=facts.EMULATOR_APPID, action_name=None, expire_seconds=None):
        """Make a parametric QR code (str scene: *_STR_SCENE, int: *_SCENE); return its answer."""
        key = "scene_str" if isinstance(scene, str) else "scene_id"
        body = {"appid": appid, "action_info": {"scene": {key: scene}}}
        body["action_name"] = action_name or ("QR_STR_SCENE" if key == "scene_str" else "QR_SCENE")
        if expire_seconds is not None:
            body["expire_seconds"] = expire_seconds
        return self.call("POST", "/qrcode", body)

    def qrcodes(self):
        """Return every QR code made, oldest first."""
        return self.call("GET", "/qrcode")

    def scan(self, ticket, user="zhangsan"):
        """Scan a QR code as *user*: SCAN for a follower, else subscribe with qrscene_."""
        return self.call("POST", "/qrcode/scan", {"ticket": ticket, "user": user})

    # -- WeChat Pay ---------------------------------------------------------------------

    def pay_signer(self, signer):
        """Choose who signs Pay answers and notifications: public_key, certificate or both."""
        return self.call("POST", "/pay/signer", {"signer": signer})

    def refund_mode(self, status):
        """Make new refunds answer PROCESSING (until moved) or SUCCESS at once."""
        return self.call("POST", "/pay/refund-mode", {"status": status})

    def move_refund(self, out_refund_no, status, notify=True):
        """Move a refund to SUCCESS, CLOSED or ABNORMAL; return {"refund", "notification"}."""
        body = {"status": status, "notify": notify}
        return self.call("POST", f"/pay/refunds/{out_refund_no}", body)

    def renotify_refund(self, out_refund_no):
        """Send a refund's notification for its current state again."""
        return self.call("POST", f"/pay/refunds/{out_refund_no}/notify")

    def pay_refunds(self):
        """Return every refund as the query API shows it."""
        return self.call("GET", "/pay/refunds")

    def pay_notifications(self):
        """Return every Pay notification sent, with its headers and body."""
        return self.call("GET", "/pay/notifications")

    def authorize(self, url, user="zhangsan", action="allow", from_menu=False):
        """Walk an authorization link as *user* would; return the site's callback URL.

        The emulator's answer to *url* is followed like a phone would: a silent 302 is
        returned as is; a picker/consent page is answered with *action*.
        """
        path = url.split("#", 1)[0]
        cookies = f"wxemu_user={user}" + ("; wxemu_from_menu=1" if from_menu else "")
        status, headers, body = self.request("GET", path, headers={"Cookie": cookies})
        if status == 302:
            return headers["Location"]
        if status != 200:
            raise AssertionError(f"authorize -> {status}: {body[:1000].decode(errors='replace')}")
        # The picker form carries the link's parameters decoded.
        query = urlsplit(path).query
        form = {k: unquote(v) for k, v in (p.partition("=")[::2] for p in query.split("&"))}
        form.update(user=user, action=action)
        if from_menu:
            form["from_menu"] = "1"
        status, headers, body = self.request(
            "POST",
            facts.AUTHORIZE + "/confirm",
            urlencode(form).encode(),
            {"Content-Type": "application/x-www-form-urlencoded"},
        )
        if status != 302:
            raise AssertionError(f"confirm -> {status}: {body[:1000].decode(errors='replace')}")
        return headers["Location"]


def cookie_value(headers, name):
    """Return the value a response's Set-Cookie headers give cookie *name*, or None."""
    jar = SimpleCookie()
    for header in headers.get_all("Set-Cookie") or ():
        jar.load(header)
    return jar[name].value if name in jar else None
