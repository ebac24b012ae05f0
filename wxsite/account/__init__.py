"""The member page: what a site account holds, for a WeChat identity bound to it."""

from .views import bp

__all__ = ["bp"]
