"""What the emulator knows of WeChat: paths, errcodes, scopes and lifetimes.

Written down here from WeChat's own documentation, not imported from the site
(``wxsite.wechat.protocol``): a wrong path or a swapped errcode in the site must not be
mirrored by its stand-in. ``tests/emulator/test_wechat_facts.py`` compares the two sets
by name and fails on any difference, so a disagreement is looked at, not shared.

Sources (developers.weixin.qq.com, 公众号 documentation): 网页授权, 获取Access token,
获取稳定版接口调用凭据, JS-SDK说明文档 (附录1 签名算法), 获取用户基本信息, 临时素材,
高清语音素材获取接口, 生成带参数的二维码, 全局返回码说明; WeChat Pay API v3 (pay.weixin.qq.com
wiki/doc/apiv3): JSAPI下单, 查询订单, 申请退款, 签名生成 / 签名验证.
"""

#: Official hosts.
API_BASE = "https://api.weixin.qq.com"
OPEN_BASE = "https://open.weixin.qq.com"
JSSDK_URL = "https://res.wx.qq.com/open/js/jweixin-1.6.0.js"

# -- paths (网页授权, 获取Access token, JS-SDK, 用户管理, 素材管理) --------------------------
#: 第一步：用户同意授权，获取code (on open.weixin.qq.com).
AUTHORIZE = "/connect/oauth2/authorize"
#: 第二步：通过code换取网页授权access_token.
SNS_ACCESS_TOKEN = "/sns/oauth2/access_token"
#: 第三步：刷新access_token.
SNS_REFRESH_TOKEN = "/sns/oauth2/refresh_token"
#: 第四步：拉取用户信息(需scope为 snsapi_userinfo).
SNS_USERINFO = "/sns/userinfo"
#: 附：检验授权凭证（access_token）是否有效.
SNS_AUTH = "/sns/auth"
#: 获取Access token (GET, grant_type=client_credential).
TOKEN = "/cgi-bin/token"
#: 获取稳定版接口调用凭据 (POST JSON, force_refresh).
STABLE_TOKEN = "/cgi-bin/stable_token"
#: JS-SDK 附录1: 获得jsapi_ticket (type=jsapi).
TICKET = "/cgi-bin/ticket/getticket"
#: 获取用户基本信息(UnionID机制).
USER_INFO = "/cgi-bin/user/info"
#: 获取临时素材 / 高清语音素材获取接口 / 新增临时素材.
MEDIA_GET = "/cgi-bin/media/get"
MEDIA_GET_JSSDK = "/cgi-bin/media/get/jssdk"
MEDIA_UPLOAD = "/cgi-bin/media/upload"
#: 生成带参数的二维码, and 通过ticket换取二维码 (served by mp.weixin.qq.com).
QRCODE_CREATE = "/cgi-bin/qrcode/create"
SHOWQRCODE = "/cgi-bin/showqrcode"

#: 网页授权 scopes: silent (openid only) and with consent (nickname, avatar …).
SCOPE_BASE = "snsapi_base"
SCOPE_USERINFO = "snsapi_userinfo"
SCOPES = (SCOPE_BASE, SCOPE_USERINFO)

#: 网页授权 state: "开发者可以填写a-zA-Z0-9的参数值，最多128字节".
STATE_PATTERN = r"[A-Za-z0-9]{1,128}"

# -- lifetimes, seconds -----------------------------------------------------------------
#: access_token (global and web): "有效期目前为2个小时".
TOKEN_LIFETIME = 7200
#: jsapi_ticket: "有效期7200秒".
TICKET_LIFETIME = 7200
#: code: "只能使用一次，5分钟未被使用自动过期".
CODE_LIFETIME = 300
#: refresh_token: "有效期为30天".
REFRESH_TOKEN_LIFETIME = 30 * 24 * 3600
#: 临时素材: "在微信后台保存时间为3天".
MEDIA_LIFETIME = 3 * 24 * 3600
#: After a new cgi-bin/token "在5分钟内，新老access_token都可用".
CLASSIC_TOKEN_GRACE = 300

# -- 全局返回码 (HTTP 200 with {"errcode": N, "errmsg": "..."}) ----------------------------
SYSTEM_BUSY = -1  # 系统繁忙
OK = 0
INVALID_CREDENTIAL = 40001  # AppSecret错误，或者access_token无效
INVALID_GRANT_TYPE = 40002  # 不合法的凭证类型
INVALID_OPENID = 40003  # 不合法的OpenID
INVALID_MEDIA_TYPE = 40004  # 不合法的媒体文件类型
INVALID_MEDIA_ID = 40007  # 不合法的媒体文件id
INVALID_APPID = 40013  # 不合法的AppID
INVALID_ACCESS_TOKEN = 40014  # 不合法的access_token
INVALID_CODE = 40029  # 不合法或已过期的code
INVALID_REFRESH_TOKEN = 40030  # 不合法的refresh_token
INVALID_ACTION_INFO = 40053  # 不合法的actioninfo (生成带参数的二维码)
INVALID_ARGS = 40097  # 参数错误
INVALID_APPSECRET = 40125  # 不合法的AppSecret
CODE_USED = 40163  # code已被使用
IP_NOT_WHITELISTED = 40164  # 调用接口的IP地址不在白名单中
MISSING_ACCESS_TOKEN = 41001  # 缺少access_token参数
MISSING_APPID = 41002  # 缺少appid参数
APPSECRET_MISSING = 41004  # 缺少secret参数
MISSING_MEDIA_DATA = 41005  # 缺少多媒体文件数据
MISSING_MEDIA_ID = 41006  # 缺少media_id参数
MISSING_CODE = 41008  # 缺少oauth code
ACCESS_TOKEN_EXPIRED = 42001  # access_token超时
REFRESH_TOKEN_EXPIRED = 42002  # refresh_token超时
CODE_EXPIRED = 42003  # oauth_code超时
QUOTA_REACHED = 45009  # 接口调用超过限制
DATA_FORMAT_ERROR = 47001  # 解析JSON/XML内容错误
API_UNAUTHORIZED = 48001  # api功能未授权
USER_UNAUTHORIZED = 50001  # 用户未授权该api

#: errmsg as WeChat words it (callers must not rely on it; the errcode is what counts).
ERRMSG = {
    SYSTEM_BUSY: "system error",
    INVALID_CREDENTIAL: "invalid credential, access_token is invalid or not latest",
    INVALID_GRANT_TYPE: "invalid grant_type",
    INVALID_OPENID: "invalid openid",
    INVALID_MEDIA_TYPE: "invalid media type",
    INVALID_MEDIA_ID: "invalid media_id",
    INVALID_APPID: "invalid appid",
    INVALID_ACCESS_TOKEN: "invalid access_token",
    INVALID_CODE: "invalid code",
    INVALID_REFRESH_TOKEN: "invalid refresh_token",
    INVALID_ACTION_INFO: "invalid action info",
    INVALID_ARGS: "invalid args",
    INVALID_APPSECRET: "invalid appsecret",
    CODE_USED: "code been used",
    IP_NOT_WHITELISTED: "invalid ip, not in whitelist",
    MISSING_ACCESS_TOKEN: "access_token missing",
    MISSING_APPID: "appid missing",
    APPSECRET_MISSING: "appsecret missing",
    MISSING_MEDIA_DATA: "media data missing",
    MISSING_MEDIA_ID: "media_id missing",
    MISSING_CODE: "missing code",
    ACCESS_TOKEN_EXPIRED: "access_token expired",
    REFRESH_TOKEN_EXPIRED: "refresh_token expired",
    CODE_EXPIRED: "code expired",
    QUOTA_REACHED: "reach max api daily quota limit",
    DATA_FORMAT_ERROR: "data format error",
    API_UNAUTHORIZED: "api unauthorized",
    USER_UNAUTHORIZED: "user unauthorized",
}

# -- WeChat Pay API v3 (paths relative to PAY_API_BASE) ------------------------------------
PAY_API_BASE = "https://api.mch.weixin.qq.com"
#: JSAPI下单.
PAY_JSAPI = "/v3/pay/transactions/jsapi"
#: 商户订单号查询订单 (and, with /close, 关闭订单).
PAY_QUERY = "/v3/pay/transactions/out-trade-no/{out_trade_no}"
#: 退款申请 (and, with /{out_refund_no}, 查询单笔退款).
PAY_REFUNDS = "/v3/refund/domestic/refunds"
#: Authorization: WECHATPAY2-SHA256-RSA2048 mchid="…",nonce_str="…",signature="…",…
PAY_AUTH_SCHEMA = "WECHATPAY2-SHA256-RSA2048"
#: 签名验证: a timestamp more than 5 minutes off is refused.
PAY_MAX_SKEW = 300

# -- the emulator's own accounts (not WeChat's facts: who the emulator pretends to be) ----
#: Two Official Accounts under one Open Platform account (so their unionids match).
EMULATOR_APPID = "wx0e0e0e0e0e0e0e01"
EMULATOR_SECRET = "emu0secret0000000000000000000001"
EMULATOR_APPID_2 = "wx0e0e0e0e0e0e0e02"
EMULATOR_SECRET_2 = "emu0secret0000000000000000000002"
EMULATOR_ACCOUNTS = {EMULATOR_APPID: EMULATOR_SECRET, EMULATOR_APPID_2: EMULATOR_SECRET_2}
#: Where the emulator serves its fake JS-SDK, relative to its base.
EMULATOR_JSSDK_PATH = "/open/js/jweixin-1.6.0.js"
#: The fake merchant (its keys are in wxsite/emulator/pay_keys/).
EMULATOR_MCHID = "1900000109"
EMULATOR_MERCHANT_SERIAL = "5157F09EFDC096DE15EBE81A47057A7232F1B8E1"
EMULATOR_PLATFORM_KEY_ID = "PUB_KEY_ID_0119000001092025010100000000000001"
EMULATOR_APIV3_KEY = "emu0apiv3key00000000000000000001"
