"""Photos and voice notes: the server fetches JS-SDK uploads from WeChat and keeps them."""

from .views import bp

__all__ = ["bp"]
