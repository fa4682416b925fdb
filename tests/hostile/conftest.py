"""The service fixtures the hostile-input tests drive (each on SQLite and PostgreSQL)."""

from tests.assistance.conftest import assistance  # noqa: F401
from tests.registry.conftest import registry  # noqa: F401
