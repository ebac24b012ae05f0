"""Fixtures of the credential tests: a migrated database the stores share."""

import pytest

from support import database
from wxsite import store


@pytest.fixture
def db_path(tmp_path):
    """A migrated database (SQLite file or PostgreSQL URL) for credential stores."""
    path = database(tmp_path, "creds")
    db = store.connect(path)
    store.migrate(db)
    db.close()
    return path
