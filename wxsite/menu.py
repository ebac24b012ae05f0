"""The home page's list of entries, each declared by its blueprint beside its views.

A blueprint calls ``home_entry(bp, "view", "标题", "说明")``; when the blueprint is
registered the entry joins the app's list, in the order blueprints are registered, so an
app without a blueprint (pay off) lists nothing of it.
"""

EXTENSION = "wxsite.home_entries"


def home_entry(bp, view, label, hint):
    """Show ``bp``'s ``view`` on the home page as ``label`` with ``hint`` under it."""

    def add(state):
        state.app.extensions.setdefault(EXTENSION, []).append((f"{bp.name}.{view}", label, hint))

    bp.record_once(add)


def home_entries(app):
    """Return the app's home entries: ``(endpoint, label, hint)``."""
    return app.extensions.get(EXTENSION, [])
