"""What people read about orders and refunds: words, never WeChat's state names."""

from .products import yuan

#: Why a refund waits or failed, by the reason kept on its row (else WeChat's own message).
REASONS = {
    "NOT_ENOUGH": "商户余额不足，充值后自动重试",
    "UNAVAILABLE": "微信支付暂时不可用，稍后自动重试",
    "CLOSED": "退款已关闭",
    "ABNORMAL": "收款账户异常，需在商户平台处理",
}
ORDER_WORDS = {"NOTPAY": "待支付", "SUCCESS": "已支付", "REFUND": "已退款", "CLOSED": "已关闭"}
WAITING = ("PENDING", "PROCESSING")
FAILED = ("FAILED", "CLOSED", "ABNORMAL")


def reason(refund):
    """Return why a refund waits or failed, in words (empty when there is nothing to say)."""
    code = refund.get("fail_reason")
    if not code:
        return "微信支付拒绝退款" if refund["status"] == "FAILED" else ""
    return REASONS.get(code, code)


def refund_words(refund, operator=False):
    """Return 退款中 / 已退款 / 退款失败（原因） for one refund (the operator sees waits too)."""
    if refund["status"] == "SUCCESS":
        return "已退款"
    if refund["status"] in FAILED:
        return f"退款失败（{reason(refund)}）"
    why = reason(refund)
    return f"退款中（{why}）" if operator and why else "退款中"


def order_words(order, refunds):
    """Return the order's state in words, refunds included (部分退款 ¥x when part went back)."""
    if order["state"] in ("NOTPAY", "CLOSED"):
        return ORDER_WORDS[order["state"]]
    if any(r["status"] in WAITING for r in refunds):
        return "退款中"
    back = sum(r["amount"] for r in refunds if r["status"] == "SUCCESS")
    if back >= order["amount"]:
        return "已退款"
    if back:
        return f"部分退款 ¥{yuan(back)}"
    failed = [r for r in refunds if r["status"] in FAILED]
    if failed:
        return f"退款失败（{reason(failed[-1])}）"
    return "已支付"
