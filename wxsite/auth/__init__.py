"""WeChat web authorization, login sessions, binding to site accounts, the profile page."""

from .views import bp

__all__ = ["bp"]
