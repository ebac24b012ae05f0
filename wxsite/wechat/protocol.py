"""WeChat protocol constants of the site's client (paths, errcodes, scopes, lifetimes).

The emulator keeps its own copy, written from WeChat's documentation
(``wxsite/emulator/wechat_facts.py``); a test compares the two by name.
"""

#: Official hosts; overridable with WX_API_BASE / WX_OPEN_BASE / WX_JSSDK_URL.
API_BASE = "https://api.weixin.qq.com"
OPEN_BASE = "https://open.weixin.qq.com"
JSSDK_URL = "https://res.wx.qq.com/open/js/jweixin-1.6.0.js"

# API paths, relative to API_BASE / OPEN_BASE.
AUTHORIZE = "/connect/oauth2/authorize"
SNS_ACCESS_TOKEN = "/sns/oauth2/access_token"
SNS_REFRESH_TOKEN = "/sns/oauth2/refresh_token"
SNS_USERINFO = "/sns/userinfo"
SNS_AUTH = "/sns/auth"
TOKEN = "/cgi-bin/token"
STABLE_TOKEN = "/cgi-bin/stable_token"
TICKET = "/cgi-bin/ticket/getticket"
USER_INFO = "/cgi-bin/user/info"
MEDIA_GET = "/cgi-bin/media/get"
MEDIA_GET_JSSDK = "/cgi-bin/media/get/jssdk"
MEDIA_UPLOAD = "/cgi-bin/media/upload"
QRCODE_CREATE = "/cgi-bin/qrcode/create"

SCOPE_BASE = "snsapi_base"
SCOPE_USERINFO = "snsapi_userinfo"
SCOPES = (SCOPE_BASE, SCOPE_USERINFO)

#: `state` WeChat accepts: at most 128 bytes of [a-zA-Z0-9].
STATE_PATTERN = r"[A-Za-z0-9]{1,128}"
#: media_id / serverId as WeChat issues them (letters, digits, - and _).
MEDIA_ID_PATTERN = r"[A-Za-z0-9_-]{1,128}"

#: Lifetimes in seconds.
TOKEN_LIFETIME = 7200
TICKET_LIFETIME = 7200
CODE_LIFETIME = 300
REFRESH_TOKEN_LIFETIME = 30 * 24 * 3600
MEDIA_LIFETIME = 3 * 24 * 3600
#: After a classic cgi-bin/token fetch the previous token keeps working this long.
CLASSIC_TOKEN_GRACE = 300

# errcodes (HTTP 200 with {"errcode": N, "errmsg": "..."}).
SYSTEM_BUSY = -1
OK = 0
INVALID_CREDENTIAL = 40001
INVALID_GRANT_TYPE = 40002
INVALID_OPENID = 40003
INVALID_MEDIA_TYPE = 40004
INVALID_MEDIA_ID = 40007
INVALID_APPID = 40013
INVALID_ACCESS_TOKEN = 40014
INVALID_CODE = 40029
INVALID_REFRESH_TOKEN = 40030
INVALID_APPSECRET = 40125
CODE_USED = 40163
IP_NOT_WHITELISTED = 40164
MISSING_ACCESS_TOKEN = 41001
MISSING_APPID = 41002
MISSING_CODE = 41008
MISSING_MEDIA_ID = 41006
ACCESS_TOKEN_EXPIRED = 42001
REFRESH_TOKEN_EXPIRED = 42002
CODE_EXPIRED = 42003
QUOTA_REACHED = 45009
API_UNAUTHORIZED = 48001
USER_UNAUTHORIZED = 50001

#: A call made with a credential that is no longer good: drop it, fetch anew, retry once.
CREDENTIAL_ERRCODES = frozenset({INVALID_CREDENTIAL, INVALID_ACCESS_TOKEN, ACCESS_TOKEN_EXPIRED})
#: Worth a bounded retry with backoff.
RETRY_ERRCODES = frozenset({SYSTEM_BUSY})
#: Misconfiguration: retrying cannot help; an operator must act.
CONFIG_ERRCODES = frozenset(
    {INVALID_APPID, INVALID_APPSECRET, IP_NOT_WHITELISTED, API_UNAUTHORIZED}
)

# The emulator's two Official Accounts (same Open Platform account, so unionids match).
EMULATOR_APPID = "wx0e0e0e0e0e0e0e01"
EMULATOR_SECRET = "emu0secret0000000000000000000001"
EMULATOR_APPID_2 = "wx0e0e0e0e0e0e0e02"
EMULATOR_SECRET_2 = "emu0secret0000000000000000000002"
EMULATOR_ACCOUNTS = {EMULATOR_APPID: EMULATOR_SECRET, EMULATOR_APPID_2: EMULATOR_SECRET_2}
#: Where the emulator serves its fake JS-SDK, relative to its base.
EMULATOR_JSSDK_PATH = "/open/js/jweixin-1.6.0.js"

# WeChat Pay API v3 (paths relative to PAY_API_BASE).
PAY_API_BASE = "https://api.mch.weixin.qq.com"
PAY_JSAPI = "/v3/pay/transactions/jsapi"
PAY_QUERY = "/v3/pay/transactions/out-trade-no/{out_trade_no}"
PAY_REFUNDS = "/v3/refund/domestic/refunds"
PAY_AUTH_SCHEMA = "WECHATPAY2-SHA256-RSA2048"
#: Notifications and responses older than this (seconds) are refused.
PAY_MAX_SKEW = 300
#: The emulator's fake merchant (keys in wxsite/emulator/pay_keys/, emulator only).
EMULATOR_MCHID = "1900000109"
EMULATOR_MERCHANT_SERIAL = "5157F09EFDC096DE15EBE81A47057A7232F1B8E1"
EMULATOR_PLATFORM_KEY_ID = "PUB_KEY_ID_0119000001092025010100000000000001"
EMULATOR_APIV3_KEY = "emu0apiv3key00000000000000000001"
