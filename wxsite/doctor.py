"""``wx doctor``: check a deployment and say what to enter in the MP console.

Each check returns a ``Check``; the CLI prints them and exits non-zero if any failed.
"""

from dataclasses import dataclass
from urllib.parse import urlsplit

import requests

from . import clock, store
from .wechat import WeChatError
from .wechat.client import ACCESS_TOKEN, JSAPI_TICKET


@dataclass
class Check:
    ok: bool | None  # None: a warning, not a failure
    label: str
    detail: str = ""


def run(app, client, public_url=None):
    """Return the list of checks for ``app`` (and its public URL, when given)."""
    cfg = app.config
    checks = [_mode(cfg), _secret_key(cfg), _database(app), _uploads(app)]
    checks += _pay(app)
    checks += _jobs(app)
    checks += _hosts(app)
    checks += _credentials(client)
    checks.append(_push(app, public_url))
    if public_url:
        checks += _public(cfg, public_url)
    else:
        checks.append(
            Check(None, "public URL", "pass --public-url https://your.domain to check it")
        )
    return checks


def console_entries(cfg, public_url):
    """Return what to type into the MP console for ``public_url``."""
    host = urlsplit(public_url).hostname or "?"
    lines = [
        f"设置与开发 → 接口权限 → 网页授权 → 网页授权域名: {host}",
        f"设置与开发 → 公众号设置 → 功能设置 → JS接口安全域名: {host}",
        "设置与开发 → 基本配置 → IP白名单: this server's public outbound IP",
    ]
    if cfg["WX_PUSH_TOKEN"]:
        mode = "安全模式（推荐）" if cfg["WX_PUSH_AES_KEY"] else "明文模式"
        lines += [
            f"设置与开发 → 基本配置 → 服务器配置 → 服务器地址(URL): {public_url.rstrip('/')}/wechat/push",
            "设置与开发 → 基本配置 → 服务器配置 → 令牌(Token): the value of WX_PUSH_TOKEN",
            "设置与开发 → 基本配置 → 服务器配置 → 消息加解密密钥(EncodingAESKey): "
            + (
                "the value of WX_PUSH_AES_KEY"
                if cfg["WX_PUSH_AES_KEY"]
                else "(unset: plaintext only)"
            ),
            f"设置与开发 → 基本配置 → 服务器配置 → 消息加解密方式: {mode}",
        ]
    else:
        lines.append(
            "服务器配置 (server push): set WX_PUSH_TOKEN (and WX_PUSH_AES_KEY) to receive it"
        )
    if cfg["WX_MP_VERIFY"]:
        lines.append(
            f"verification file: served at {public_url.rstrip('/')}/MP_verify_{cfg['WX_MP_VERIFY']}.txt"
        )
    else:
        lines.append("verification file: set WX_MP_VERIFY to the code in MP_verify_<code>.txt")
    return lines


def _push(app, public_url):
    """Answer WeChat's URL check the way WeChat will: through the site, or its public URL."""
    import secrets

    from .wechat import push

    cfg = app.config
    if not cfg["WX_PUSH_TOKEN"]:
        return Check(None, "server push", "off (WX_PUSH_TOKEN not set)")
    timestamp, nonce, echostr = str(int(clock.now())), "1", secrets.token_hex(8)
    query = {
        "timestamp": timestamp,
        "nonce": nonce,
        "echostr": echostr,
        "signature": push.signature(cfg["WX_PUSH_TOKEN"], timestamp, nonce),
    }
    try:
        if public_url:
            answer = requests.get(f"{public_url.rstrip('/')}/wechat/push", params=query, timeout=5)
            status, text, where = answer.status_code, answer.text, public_url
        else:
            answer = app.test_client().get("/wechat/push", query_string=query)
            status, text, where = answer.status_code, answer.get_data(as_text=True), "the site"
    except requests.RequestException as exc:
        return Check(
            False, "server push", f"{public_url}/wechat/push unreachable ({type(exc).__name__})"
        )
    if status == 200 and text == echostr:
        mode = "safe/compatible" if cfg["WX_PUSH_AES_KEY"] else "plaintext"
        return Check(True, "server push", f"/wechat/push at {where} answers the URL check ({mode})")
    return Check(False, "server push", f"/wechat/push at {where} answered HTTP {status}")


def _mode(cfg):
    if cfg["WX_EMULATOR"]:
        return Check(None, "mode", "emulator (WX_APPID not set): WeChat is the built-in emulator")
    return Check(
        True, "mode", f"production, AppID {cfg['WX_APPID']}, token API {cfg['WX_TOKEN_API']}"
    )


def _secret_key(cfg):
    key = cfg["SECRET_KEY"] or ""
    if len(key) < 32 or len(set(key)) < 10:
        return Check(
            False,
            "SECRET_KEY",
            "too short or too simple: use python -c 'import secrets; print(secrets.token_hex(32))'",
        )
    return Check(True, "SECRET_KEY", f"{len(key)} characters")


def _database(app):
    engine = store.engine(app)
    info = engine.describe()
    where = f"{info['engine']} {info.get('version', '?')} at {info['database']}"
    if "error" in info:
        return Check(False, "database", f"{where}: {info['error']}")
    try:
        with engine.connection() as db:
            pending = [name for name, at in store.applied(db) if at is None]
    except store.Error as exc:
        return Check(False, "database", f"{where}: {exc}")
    details = [f"migrations {len(store.MIGRATIONS) - len(pending)}/{len(store.MIGRATIONS)}"]
    if "journal_mode" in info:
        details.append(f"journal {info['journal_mode']}")
    if "pool" in info:
        details.append(f"pool {info['pool']['open']}/{info['pool']['max']} open")
    return Check(not pending, "database", f"{where} ({', '.join(details)})")


def _pay(app):
    """WeChat Pay: the keys it verifies with, and refunds waiting for a balance top-up."""
    client = app.extensions.get("wxsite.pay")
    if client is None:
        return [Check(None, "WeChat Pay", "off (WXPAY_MCHID not set)")]
    from .pay.products import yuan
    from .store import pay as pay_store

    keys = f"merchant {client.mchid}, verifies with {', '.join(client.serials)}"
    try:
        with store.engine(app).connection() as db:
            count, fen = pay_store.short_refunds(db)
    except store.Error as exc:
        return [Check(False, "WeChat Pay", f"{keys}; refunds unreadable: {exc}")]
    if count:
        return [
            Check(
                None,
                "WeChat Pay",
                f"{keys}; {count} refunds (¥{yuan(fen)}) wait: the merchant balance needs a "
                "top-up; once topped up, the pay.reconcile job (every minute, in `wx worker`) "
                "retries them by itself, each when its backoff is due; "
                "`flask --app wsgi pay reconcile --topped-up` retries them at once",
            )
        ]
    return [Check(True, "WeChat Pay", keys)]


def _hosts(app):
    """What this host must share with the others on its database (wxsite.hosts)."""
    from . import hosts

    try:
        return [Check(ok, label, detail) for ok, label, detail in hosts.compare(app)]
    except store.Error as exc:
        return [Check(False, "hosts", f"host records unreadable: {exc}")]


def _jobs(app):
    """Background jobs: the queue answers, nothing failed for good, nothing waits too long."""
    from . import jobs as jobs_module

    jobs = jobs_module.get(app)
    where = jobs.describe()
    consumer = app.config["WXSITE_JOBS_CONSUMER"]
    runs = "in this site's processes" if consumer == "thread" else "by `wx worker` only"
    pending = jobs.pending()
    if pending is None:
        return [Check(False, "jobs", f"{where}: the queue does not answer")]
    try:
        with store.engine(app).connection() as db:
            failed = store.list_jobs(db, ["failed"], 5)
            counts = store.job_counts(db)
            waited = store.oldest_waiting(db)
    except store.Error as exc:
        return [Check(False, "jobs", f"{where}: job records unreadable: {exc}")]
    checks = []
    summary = f"{where}, run {runs}; " + ", ".join(f"{k} {v}" for k, v in counts.items() if v)
    if failed:
        lines = [
            f"{row['key']} ({row['attempts']} tries): {row['last_error'] or '?'}" for row in failed
        ]
        checks.append(
            Check(
                False,
                "jobs",
                f"{counts['failed']} failed for good — "
                + "; ".join(lines)
                + " (`flask --app wsgi wx jobs retry KEY` once the cause is mended)",
            )
        )
    if waited > 300:
        checks.append(
            Check(
                None,
                "jobs",
                f"a job has waited {waited / 60:.0f} min to start: is a worker running "
                "(`flask --app wsgi wx worker`, or WXSITE_JOBS_CONSUMER=thread)?",
            )
        )
    if not checks:
        checks.append(Check(True, "jobs", summary.rstrip("; ")))
    return checks


def _uploads(app):
    from .media import blobs

    store = app.extensions[blobs.EXTENSION]
    where = store.describe()["location"]
    try:
        return Check(True, "uploads", store.check())
    except OSError as exc:
        return Check(False, "uploads", f"{where} is not writable: {exc.strerror}")
    except blobs.BlobError as exc:
        return Check(False, "uploads", f"{where}: {exc}")


def _credentials(client):
    # Read-only: replacing the shared token or ticket here would leave every worker signing
    # with one that WeChat retires a few minutes later. The secret is checked with a call
    # that replaces nothing; a credential is fetched only when none is stored at all
    # (what the first page would do).
    try:
        lifetime = client.check_secret()
    except WeChatError as exc:
        return [_failed("access_token", exc)]
    token = client.credentials.status(ACCESS_TOKEN)
    stored = (
        f"shared token valid {token['expires_in']} s more"
        if token["cached"]
        else "no shared token yet (the first page fetches it)"
    )
    checks = [
        Check(
            True,
            "access_token",
            f"AppID and AppSecret accepted (stable token {lifetime} s); {stored}",
        )
    ]
    ticket = client.credentials.status(JSAPI_TICKET)
    if ticket["cached"]:
        detail = f"shared ticket valid {ticket['expires_in']} s more (kept: workers sign with it)"
        checks.append(Check(True, "jsapi_ticket", detail))
        return checks
    try:
        client.jsapi_ticket()
    except WeChatError as exc:
        checks.append(_failed("jsapi_ticket", exc))
        return checks
    ticket = client.credentials.status(JSAPI_TICKET)
    detail = f"fetched (none was stored), valid {ticket['expires_in']} s more"
    checks.append(Check(True, "jsapi_ticket", detail))
    return checks


def _failed(label, exc):
    why = exc.hint or exc.errmsg
    code = "" if exc.errcode is None else f"errcode {exc.errcode}: "
    return Check(False, label, f"{code}{why}")


def _public(cfg, public_url):
    parts = urlsplit(public_url)
    checks = []
    if parts.scheme == "https":
        checks.append(Check(True, "public URL", f"{public_url} is https"))
    else:
        checks.append(
            Check(
                None,
                "public URL",
                f"{public_url} is not https: WeChat works, but sessions are exposed",
            )
        )
    if parts.port not in (None, 80, 443):
        checks.append(
            Check(False, "public port", "the MP console accepts domains on ports 80/443 only")
        )
    code = cfg["WX_MP_VERIFY"]
    if code:
        url = f"{public_url.rstrip('/')}/MP_verify_{code}.txt"
        try:
            body = requests.get(url, timeout=5).text.strip()
            checks.append(
                Check(
                    body == code,
                    "MP_verify file",
                    f"{url} {'serves the code' if body == code else 'does not serve the code'}",
                )
            )
        except requests.RequestException as exc:
            checks.append(
                Check(False, "MP_verify file", f"{url} unreachable ({type(exc).__name__})")
            )
    return checks
