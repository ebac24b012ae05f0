"""One exception type for everything WeChat answers (or fails to answer)."""

from . import protocol

#: What an operator must do about an errcode that no retry can fix.
OPERATOR_HINTS = {
    protocol.INVALID_APPID: "WX_APPID is wrong (40013): copy the AppID from the MP console",
    protocol.INVALID_APPSECRET: "WX_SECRET is wrong (40125): reset it in the MP console "
    "(设置与开发 → 基本配置 → AppSecret)",
    protocol.IP_NOT_WHITELISTED: "this server's IP is not in the MP console's IP whitelist "
    "(设置与开发 → 基本配置 → IP白名单) (40164)",
    protocol.API_UNAUTHORIZED: "the account is not authorized for this API (48001): "
    "web authorization and the JS-SDK need a verified service account",
    protocol.QUOTA_REACHED: "the daily API quota is used up (45009): wait, or reset it in the MP console",
}

#: Endpoints that issue a credential from appid + secret. They take no access_token, so
#: 40001 ("invalid credential") there is WeChat's answer for an AppSecret that does not
#: belong to the AppID — not a stale token that a refetch would fix.
CREDENTIAL_ISSUERS = (protocol.TOKEN, protocol.STABLE_TOKEN, protocol.SNS_ACCESS_TOKEN)

WRONG_SECRET_HINT = (
    "WX_SECRET is wrong (40001 from {path}: WeChat's answer for an AppSecret that does not "
    "match WX_APPID): copy it again, or reset it in the MP console (设置与开发 → 基本配置 → AppSecret)"
)


class WeChatError(Exception):
    """WeChat answered with an errcode, or could not be reached (``errcode`` is None)."""

    def __init__(self, errcode, errmsg, path=None):
        self.errcode = errcode
        self.errmsg = errmsg
        self.path = path
        super().__init__(f"{path or 'wechat'}: errcode={errcode} errmsg={errmsg}")

    @property
    def unavailable(self):
        """True when WeChat was not reached or answered garbage (timeouts, 5xx, bad JSON)."""
        return self.errcode is None

    @property
    def wrong_secret(self):
        """True when WeChat refused the AppSecret (40125, or 40001 from a credential issuer)."""
        if self.errcode == protocol.INVALID_APPSECRET:
            return True
        return self.errcode == protocol.INVALID_CREDENTIAL and self.from_issuer

    @property
    def from_issuer(self):
        """True when the failed call was one that trades appid + secret for a credential."""
        return bool(self.path) and self.path.endswith(CREDENTIAL_ISSUERS)

    @property
    def credential_invalid(self):
        """True when the credential used is stale: drop it, fetch anew, retry once."""
        return self.errcode in protocol.CREDENTIAL_ERRCODES and not self.wrong_secret

    @property
    def misconfigured(self):
        """True when only an operator can fix it (wrong appid/secret, IP whitelist, …)."""
        return self.errcode in protocol.CONFIG_ERRCODES or self.wrong_secret

    @property
    def lasting(self):
        """True when retrying soon cannot help: remember it for a while instead of retrying."""
        return self.misconfigured or self.errcode == protocol.QUOTA_REACHED

    @property
    def hint(self):
        """Operator-facing explanation, safe to log (no secrets)."""
        if self.errcode == protocol.INVALID_CREDENTIAL and self.wrong_secret:
            return WRONG_SECRET_HINT.format(path=self.path)
        return OPERATOR_HINTS.get(self.errcode, "")
