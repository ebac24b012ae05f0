"""Traffic WeChat sends the site: server push and WeChat Pay's notifications.

One seam for all of it: verify (framework-free, in ``wxsite.wechat``) → deduplicate →
apply, the record of the delivery committed with what it applies. Answers are always in
the shape WeChat expects (text for a push, JSON for pay), never an HTML page.
"""

from .views import bp

__all__ = ["bp"]
