"""JS-SDK: signed ``wx.config`` for pages, ``/jssdk/config``, and the share page."""

from .views import bp

__all__ = ["bp"]
