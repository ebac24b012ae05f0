"""WeChat Pay: JSAPI orders, payment and refund notifications, refunds, the orders page."""

from .views import bp

__all__ = ["bp"]
