"""The fault tests' PostgreSQL cluster of their own (`tests.kit.faults`)."""

from tests.kit.faults import postgres

__all__ = ["postgres"]
