"""Site-wide pages: home, health, the MP console's verification file."""

from .views import bp

__all__ = ["bp"]
