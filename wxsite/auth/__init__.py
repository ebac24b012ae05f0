"""WeChat web authorization, login sessions, binding to site accounts, the profile page."""

from . import scan  # noqa: F401 - its routes join the blueprint
from .views import bp

__all__ = ["bp"]
