"""The catalogue of settings: every name, its default and what it means.

Nothing else in wxsite reads ``os.environ``; ``load`` turns a mapping (the environment,
a ``.env`` file, a test's dict) into validated settings or raises ``ConfigError`` with one
line that names the bad variable.
"""

import os
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from .wechat import protocol


class ConfigError(Exception):
    """A setting that stops start-up; the message names the variable."""


@dataclass(frozen=True)
class Setting:
    name: str
    default: object
    help: str
    kind: str = "str"  # str | url | redis | int | float | choice | push | hosts
    choices: tuple = ()


#: Pinned (SPEC §2) and local settings, in the order the README lists them.
SETTINGS = (
    Setting("WX_APPID", None, "the Official Account's AppID; unset → emulator mode"),
    Setting("WX_SECRET", None, "the Official Account's AppSecret"),
    Setting("WX_API_BASE", protocol.API_BASE, "base of the API host", "url"),
    Setting("WX_OPEN_BASE", protocol.OPEN_BASE, "base of the authorization host", "url"),
    Setting("WX_JSSDK_URL", protocol.JSSDK_URL, "JS-SDK script the pages load", "url"),
    Setting(
        "WX_TOKEN_API",
        "stable",
        "stable (POST cgi-bin/stable_token) or classic (GET cgi-bin/token)",
        "choice",
        ("stable", "classic"),
    ),
    Setting("WX_PROXY_HOPS", 0, "reverse proxies / tunnels trusted for X-Forwarded-*", "int"),
    Setting("WX_MP_VERIFY", None, "code of the MP_verify_<code>.txt file to serve"),
    Setting(
        "WX_PUSH_TOKEN", None, "服务器配置 Token (3–32 letters/digits); unset → push off", "push"
    ),
    Setting(
        "WX_PUSH_AES_KEY",
        None,
        "EncodingAESKey (43 letters/digits); unset → plaintext only",
        "push",
    ),
    Setting("WX_PUSH_REPLY", None, "passive reply to text messages users send (unset: none)"),
    Setting(
        "WXSITE_WEAPP_USERNAME",
        None,
        "a mini program's original id (gh_…), optionally :path; /share opens it (unset: no button)",
    ),
    Setting("SECRET_KEY", None, "Flask secret; required in production"),
    Setting(
        "WXSITE_DATABASE",
        None,
        "a SQLite file (default instance/wxsite.sqlite3) or postgresql://user:pw@host:port/db",
    ),
    Setting("WXSITE_DB_POOL", 10, "PostgreSQL connections each process may open", "int"),
    Setting("WXSITE_UPLOADS", None, "media: a folder (default instance/uploads) or s3://…"),
    Setting("AWS_ENDPOINT_URL", None, "S3-compatible endpoint, for s3:// uploads", "url"),
    Setting("AWS_ACCESS_KEY_ID", None, "object storage access key (Tencent COS: SecretId)"),
    Setting("AWS_SECRET_ACCESS_KEY", None, "object storage secret (Tencent COS: SecretKey)"),
    Setting("AWS_DEFAULT_REGION", None, "object storage region (ap-guangzhou, us-east-1 …)"),
    Setting(
        "WXSITE_EMULATOR_URL",
        "http://127.0.0.1:5001",
        "where the emulator runs in emulator mode (the default of the three WX_*_URL/BASE)",
        "url",
    ),
    Setting(
        "WXSITE_REDIS_URL",
        None,
        "share credentials through Redis (several hosts) instead of the SQLite database",
        "redis",
    ),
    Setting(
        "WXSITE_JOBS_CONSUMER",
        "thread",
        "thread: run background jobs in threads inside each site process; off: only queue "
        "them (run `flask --app wsgi wx worker` somewhere)",
        "choice",
        ("thread", "off"),
    ),
    Setting(
        "WXSITE_JOBS_FILE",
        None,
        "the SQLite job queue when WXSITE_REDIS_URL is unset (default: jobs.sqlite3 beside "
        "a SQLite database, else in the instance folder)",
    ),
    Setting("WXSITE_JOBS_QUEUE", "wxsite", "the queue's name (sites sharing one Redis differ)"),
    Setting("WXSITE_JOBS_WORKERS", 2, "job threads of the in-process consumer", "int"),
    Setting("WXSITE_JOBS_ATTEMPTS", 6, "tries of a job before it is failed", "int"),
    Setting(
        "WXSITE_JOBS_RETRY_BASE",
        10.0,
        "seconds before a failed job's first retry; doubled each time",
        "float",
    ),
    Setting("WXSITE_JOBS_RETRY_MAX", 1800.0, "longest wait between two tries of a job", "float"),
    Setting(
        "WXSITE_JOBS_LEASE",
        300.0,
        "seconds a job's run holds it; a worker silent that long is taken for dead and the "
        "job is run again",
        "float",
    ),
    Setting("WXSITE_HTTP_TIMEOUT", 5.0, "read timeout of one WeChat call, seconds", "float"),
    Setting(
        "WXSITE_DEADLINE", 15.0, "total budget of a WeChat call with retries, seconds", "float"
    ),
    Setting("WXSITE_MEDIA_MAX_BYTES", 10 * 1024 * 1024, "largest media download accepted", "int"),
    Setting(
        "WXSITE_LOGIN_STARTS_PER_IP",
        120,
        "logins one IP address may start per 10 minutes (each keeps a row for a day)",
        "int",
    ),
    Setting("WXPAY_MCHID", None, "WeChat Pay merchant id (商户号); unset → pay off (emulator: on)"),
    Setting("WXPAY_PRIVATE_KEY_FILE", None, "merchant API private key (apiclient_key.pem)"),
    Setting("WXPAY_CERT_SERIAL", None, "serial number of the merchant API certificate"),
    Setting("WXPAY_APIV3_KEY", None, "APIv3 key (32 characters) that decrypts notifications"),
    Setting("WXPAY_PUBLIC_KEY_FILE", None, "WeChat Pay public key (微信支付公钥) PEM"),
    Setting("WXPAY_PUBLIC_KEY_ID", None, "the public key's id (PUB_KEY_ID_…)"),
    Setting(
        "WXPAY_PLATFORM_CERT_FILES",
        None,
        "platform certificate PEM files, comma-separated (alone or beside the public key)",
    ),
    Setting("WXPAY_API_BASE", protocol.PAY_API_BASE, "base of the WeChat Pay API", "url"),
    Setting(
        "WXPAY_ADMINS",
        "",
        "site accounts (comma-separated usernames) allowed to refund on /pay/admin",
    ),
    Setting(
        "WXPAY_CA_BUNDLE", None, "CA bundle to verify WeChat Pay's TLS with (private test setups)"
    ),
    Setting(
        "WXSITE_PUBLIC_URL",
        None,
        "public base URL: the only Host the site answers, and links made outside requests (CLI)",
        "url",
    ),
    Setting(
        "WXSITE_TRUSTED_HOSTS",
        "",
        "more host names the site answers (comma-separated; .example.com for subdomains)",
        "hosts",
    ),
    Setting("WXSITE_LOG_LEVEL", "INFO", "log level of the wxsite loggers"),
    Setting("WXSITE_NAME", "微站", "the site's name in page titles and headers"),
)

_BY_NAME = {s.name: s for s in SETTINGS}
_APPID = re.compile(r"wx[0-9a-f]{16}")
#: One entry of WXSITE_TRUSTED_HOSTS: a DNS name (a leading dot: its subdomains too) or an
#: IPv4 address; no scheme, port or path (Werkzeug's host check cannot match IPv6).
_HOST = re.compile(r"\.?[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?")


def load(environ, testing=False):
    """Return validated settings from ``environ`` (any mapping of names to values)."""
    # testing: an app the tests build from a dict (create_app(test_config)) may run
    # production mode without WXSITE_PUBLIC_URL, answering any host (the test client's
    # "localhost"); the real start paths (wsgi.py, gunicorn, flask) never pass it.
    out = {}
    for setting in SETTINGS:
        raw = environ.get(setting.name)
        if raw is None or (isinstance(raw, str) and raw.strip() == ""):
            out[setting.name] = setting.default
            continue
        out[setting.name] = _parse(setting, raw.strip() if isinstance(raw, str) else raw)
    _check_pairs(out, environ)
    _check_hosts(out, testing)
    _check_pay(out, environ)
    if out["WX_PUSH_AES_KEY"] and not out["WX_PUSH_TOKEN"]:
        raise ConfigError("WX_PUSH_TOKEN is not set: WX_PUSH_AES_KEY needs the Token beside it")
    _check_uploads(out)
    if testing and environ.get("WXSITE_JOBS_CONSUMER") is None:
        # An app a test builds runs no job threads unless the test asks for them: threads
        # would outlive the test (tests that want them stop them at their end).
        out["WXSITE_JOBS_CONSUMER"] = "off"
    if out["WXSITE_JOBS_ATTEMPTS"] < 1:
        raise ConfigError("WXSITE_JOBS_ATTEMPTS must be at least 1")
    return out


#: Read before the site exists: by ``load_environ`` (where the .env file is) and by
#: ``wxsite/gunicorn_conf.py`` (how gunicorn serves it). Listed in the README with the rest.
SERVER_SETTINGS = (
    Setting("WXSITE_DOTENV", ".env", "the .env file to read (relative to the working directory)"),
    Setting("WXSITE_BIND", "127.0.0.1:8000", "where `make serve` / gunicorn listens"),
    Setting("WEB_CONCURRENCY", None, "gunicorn worker processes (default 2 × CPUs + 1, at most 9)"),
    Setting("WXSITE_THREADS", 4, "threads per gunicorn worker", "int"),
    Setting("WXSITE_INSTANCE", None, "the instance folder (default: instance/ in the checkout)"),
)


def instance_path(environ):
    """Return the instance folder ``WXSITE_INSTANCE`` names, or None for the default."""
    value = (environ.get("WXSITE_INSTANCE") or "").strip()
    return os.path.abspath(value) if value else None


def server(environ, cpus=1):
    """Return gunicorn's ``bind``, ``workers`` and ``threads`` from ``environ``."""

    def number(name, default):
        raw = (environ.get(name) or "").strip()
        if not raw:
            return default
        if not raw.isdigit() or int(raw) < 1:
            raise ConfigError(f"{name} must be a whole number above 0, not {raw!r}")
        return int(raw)

    return {
        "bind": (environ.get("WXSITE_BIND") or "").strip() or "127.0.0.1:8000",
        "workers": number("WEB_CONCURRENCY", min(2 * cpus + 1, 9)),
        "threads": number("WXSITE_THREADS", 4),
    }


def load_environ():
    """Return settings from the process environment and a ``.env`` file when present."""
    from dotenv import load_dotenv

    load_dotenv(os.environ.get("WXSITE_DOTENV") or SERVER_SETTINGS[0].default, override=False)
    return load(os.environ)


def _parse(setting, raw):
    name = setting.name
    if setting.kind == "int":
        try:
            value = int(raw)
        except (TypeError, ValueError):
            raise ConfigError(f"{name} must be a whole number, got {raw!r}") from None
        if value < 0:
            raise ConfigError(f"{name} must not be negative, got {raw!r}")
        return value
    if setting.kind == "float":
        try:
            value = float(raw)
        except (TypeError, ValueError):
            raise ConfigError(f"{name} must be a number of seconds, got {raw!r}") from None
        if not value > 0:
            raise ConfigError(f"{name} must be positive, got {raw!r}")
        return value
    if setting.kind == "push":
        from .wechat import push

        check = push.validate_token if name == "WX_PUSH_TOKEN" else push.validate_aes_key
        try:
            return check(raw, name)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
    if setting.kind == "choice" and raw not in setting.choices:
        raise ConfigError(f"{name} must be one of {', '.join(setting.choices)}, got {raw!r}")
    if setting.kind == "redis" and urlsplit(raw).scheme not in ("redis", "rediss", "unix"):
        raise ConfigError(f"{name} must be a redis://, rediss:// or unix:// URL, got {raw!r}")
    if setting.kind == "hosts":
        hosts = [h.strip().lower() for h in raw.split(",") if h.strip()]
        for host in hosts:
            if not _HOST.fullmatch(host):
                raise ConfigError(
                    f"{name} must list host names such as wx.example.com (no scheme or port), "
                    f"got {host!r}"
                )
        return ",".join(hosts)
    if setting.kind == "url":
        parts = urlsplit(raw)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(f"{name} must be an http(s) URL such as https://host, got {raw!r}")
        if setting.name.endswith("_BASE"):
            raw = raw.rstrip("/")
    return raw


def _check_hosts(out, testing):
    # WXSITE_ALLOWED_HOSTS (computed; None: any host) is what security.py lets through. The
    # Host header ends up in redirect_uri, the pay notify_url and QR links, so production
    # answers only its public host and the ones listed in WXSITE_TRUSTED_HOSTS.
    public = out["WXSITE_PUBLIC_URL"]
    if not out["WX_EMULATOR"] and not public and not testing:
        raise ConfigError(
            "WXSITE_PUBLIC_URL is not set: it is required when WX_APPID is set (production), "
            "it names the host the site answers"
        )
    hosts = [h for h in out["WXSITE_TRUSTED_HOSTS"].split(",") if h]
    if public:
        hosts.insert(0, urlsplit(public).hostname)
    out["WXSITE_ALLOWED_HOSTS"] = hosts or None


S3_SETTINGS = (
    "AWS_ENDPOINT_URL",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_DEFAULT_REGION",
)
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_PREFIX_PART = re.compile(r"[A-Za-z0-9._-]+")
_REGION = re.compile(r"[A-Za-z0-9-]{2,64}")


def s3_location(value):
    """Return ``(bucket, prefix)`` of an ``s3://bucket[/prefix]`` WXSITE_UPLOADS; None: a folder."""
    if not isinstance(value, str) or not value.lower().startswith("s3:"):
        return None
    if "@" in value:  # never echo what may be a key pasted into the URL
        raise ConfigError(
            "WXSITE_UPLOADS: no keys in the URL; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
        )
    if not value.startswith("s3://"):
        raise ConfigError(
            f"WXSITE_UPLOADS must be s3://bucket or s3://bucket/prefix, got {value!r}"
        )
    # Bucket and prefix parts allow no ":", "@", "?", "#" or "%": no port, userinfo,
    # query or escapes can hide in the value.
    bucket, _, prefix = value[len("s3://") :].partition("/")
    if not _BUCKET.fullmatch(bucket) or ".." in bucket:
        raise ConfigError(f"WXSITE_UPLOADS: {bucket!r} is not a bucket name (3–63 a-z 0-9 . -)")
    prefix = prefix.strip("/")
    parts = prefix.split("/") if prefix else []
    if any(not _PREFIX_PART.fullmatch(p) or p in (".", "..") for p in parts):
        raise ConfigError(
            f"WXSITE_UPLOADS: the prefix {prefix!r} may hold only A-Z a-z 0-9 . _ - and /"
        )
    return bucket, prefix


def _check_uploads(out):
    if s3_location(out["WXSITE_UPLOADS"]) is None:
        return
    for name in S3_SETTINGS:
        if not out[name]:
            raise ConfigError(
                f"{name} is not set: WXSITE_UPLOADS={out['WXSITE_UPLOADS']} needs "
                + ", ".join(S3_SETTINGS)
            )
    if not _REGION.fullmatch(out["AWS_DEFAULT_REGION"]):
        raise ConfigError(
            f"AWS_DEFAULT_REGION must be a region name such as ap-guangzhou, "
            f"got {out['AWS_DEFAULT_REGION']!r}"
        )


PAY_SETTINGS = (
    "WXPAY_MCHID",
    "WXPAY_PRIVATE_KEY_FILE",
    "WXPAY_CERT_SERIAL",
    "WXPAY_APIV3_KEY",
)
#: What WeChat Pay's answers may be signed with: the public key, certificates, or both.
PAY_VERIFY_SETTINGS = ("WXPAY_PUBLIC_KEY_FILE", "WXPAY_PUBLIC_KEY_ID", "WXPAY_PLATFORM_CERT_FILES")
#: The emulator's fake merchant: public test keys, emulator mode only.
EMULATOR_PAY_KEYS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "emulator", "pay_keys")


def _check_pay(out, environ):
    given = [name for name in PAY_SETTINGS + PAY_VERIFY_SETTINGS if out[name]]
    if not given and out["WX_EMULATOR"]:
        out.update(
            WXPAY_MCHID=protocol.EMULATOR_MCHID,
            WXPAY_PRIVATE_KEY_FILE=os.path.join(EMULATOR_PAY_KEYS, "merchant.key.pem"),
            WXPAY_CERT_SERIAL=protocol.EMULATOR_MERCHANT_SERIAL,
            WXPAY_APIV3_KEY=protocol.EMULATOR_APIV3_KEY,
            WXPAY_PUBLIC_KEY_FILE=os.path.join(EMULATOR_PAY_KEYS, "platform.pub.pem"),
            WXPAY_PUBLIC_KEY_ID=protocol.EMULATOR_PLATFORM_KEY_ID,
            WXPAY_PLATFORM_CERT_FILES=os.path.join(EMULATOR_PAY_KEYS, "platform_cert.pem"),
        )
        if not environ.get("WXPAY_API_BASE"):
            out["WXPAY_API_BASE"] = out["WX_API_BASE"]
        return
    if not given:
        return
    for name in PAY_SETTINGS:
        if not out[name]:
            raise ConfigError(
                f"{name} is not set: WeChat Pay needs all of {', '.join(PAY_SETTINGS)}"
            )
    if len(out["WXPAY_APIV3_KEY"]) != 32:
        raise ConfigError("WXPAY_APIV3_KEY must be exactly 32 characters")
    public_file, public_id = out["WXPAY_PUBLIC_KEY_FILE"], out["WXPAY_PUBLIC_KEY_ID"]
    if bool(public_file) != bool(public_id):
        missing = "WXPAY_PUBLIC_KEY_ID" if public_file else "WXPAY_PUBLIC_KEY_FILE"
        raise ConfigError(f"{missing} is not set: the public key file and its id go together")
    certs = [c.strip() for c in (out["WXPAY_PLATFORM_CERT_FILES"] or "").split(",") if c.strip()]
    if not public_file and not certs:
        raise ConfigError(
            "WXPAY_PUBLIC_KEY_FILE is not set: WeChat Pay needs the public key (with "
            "WXPAY_PUBLIC_KEY_ID) or WXPAY_PLATFORM_CERT_FILES to verify its answers"
        )
    out["WXPAY_PLATFORM_CERT_FILES"] = ",".join(certs) or None
    for name in ("WXPAY_PRIVATE_KEY_FILE", "WXPAY_PUBLIC_KEY_FILE", "WXPAY_CA_BUNDLE"):
        if out[name] and not os.path.isfile(out[name]):
            raise ConfigError(f"{name} is not a readable file: {out[name]}")
    for path in certs:
        if not os.path.isfile(path):
            raise ConfigError(f"WXPAY_PLATFORM_CERT_FILES: {path} is not a readable file")


def _check_pairs(out, environ):
    appid, secret = out["WX_APPID"], out["WX_SECRET"]
    if bool(appid) != bool(secret):
        missing = "WX_SECRET" if appid else "WX_APPID"
        raise ConfigError(f"{missing} is not set: WX_APPID and WX_SECRET go together")
    if appid and not _APPID.fullmatch(appid):
        raise ConfigError(
            f"WX_APPID looks wrong: an AppID is 'wx' and 16 hex digits, got {appid!r}"
        )
    if appid and not out["SECRET_KEY"]:
        raise ConfigError("SECRET_KEY is not set: it is required when WX_APPID is set (production)")
    if not appid:
        # Emulator mode: every WeChat URL not set explicitly points at the emulator.
        emu = out["WXSITE_EMULATOR_URL"].rstrip("/")
        for name, value in (
            ("WX_API_BASE", emu),
            ("WX_OPEN_BASE", emu),
            ("WX_JSSDK_URL", emu + protocol.EMULATOR_JSSDK_PATH),
        ):
            if not environ.get(name):
                out[name] = value
        out["WX_APPID"] = protocol.EMULATOR_APPID
        out["WX_SECRET"] = protocol.EMULATOR_SECRET
        out["WX_EMULATOR"] = True
    else:
        out["WX_EMULATOR"] = False
