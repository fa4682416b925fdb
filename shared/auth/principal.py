"""Who is calling and what they may touch: scopes, DOPA area codes, and the one area filter for queries."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, false, or_, true

from shared.errors import Forbidden

ALL = "*"

# DOPA codes: province (2 digits), district (4), sub-district (6), village (sub-district + 2-digit number).
_AREA_CODE = re.compile(r"\d{2}(?:\d{2}){0,3}")


# Scopes a token holds only when they were asked for by name: "*" does not imply them.
SENSITIVE_SCOPES = frozenset({"pii:read", "audit:read"})


def is_sensitive(scope: str) -> bool:
    """Unmasked personal data, the audit log and every service's admin operations."""
    return scope in SENSITIVE_SCOPES or scope.endswith(":admin")


def is_area_claim(value: object) -> bool:
    """True if `value` may appear in an `areas` claim: "*" or a 2/4/6/8-digit DOPA code."""
    # An empty string would be a prefix of every code, so it must never pass as a claim.
    return isinstance(value, str) and (value == ALL or _AREA_CODE.fullmatch(value) is not None)


@dataclass(frozen=True, slots=True)
class Principal:
    """The authenticated client: its id (`sub`), granted scopes, the areas it may see, and who it acts for."""

    client_id: str
    scopes: frozenset[str] = field(default_factory=frozenset)
    areas: frozenset[str] = field(default_factory=frozenset)
    subject: str | None = None

    def __post_init__(self) -> None:
        # Coerce plain iterables so callers may pass lists; frozen dataclasses need object.__setattr__.
        object.__setattr__(self, "scopes", frozenset(self.scopes))
        object.__setattr__(self, "areas", frozenset(self.areas))
        bad = sorted(a for a in self.areas if not is_area_claim(a))
        if bad:
            raise ValueError(f"not DOPA area codes: {bad}")

    @property
    def sees_all_areas(self) -> bool:
        """True if the principal's area claim is "*" (the whole country)."""
        return ALL in self.areas

    def has_scope(self, scope: str) -> bool:
        """True if the principal was granted `scope`, or "*" and the scope is not a sensitive one (those are
        granted only by name)."""
        return scope in self.scopes or (ALL in self.scopes and not is_sensitive(scope))

    def missing_scopes(self, required: Iterable[str]) -> list[str]:
        """The scopes in `required` that the principal lacks, in order."""
        return [s for s in required if not self.has_scope(s)]

    def area_prefixes(self) -> tuple[str, ...] | None:
        """The minimal sorted set of claimed code prefixes; None means every area ("*")."""
        if self.sees_all_areas:
            return None
        # Drop codes already covered by a shorter claimed prefix ("40" covers "4001"): fewer OR terms in SQL.
        ordered = sorted(self.areas, key=lambda code: (len(code), code))
        kept: list[str] = []
        for code in ordered:
            if not any(code.startswith(prefix) for prefix in kept):
                kept.append(code)
        return tuple(sorted(kept))

    def can_see(self, area_code: str) -> bool:
        """True if `area_code` lies inside one of the claimed areas (a claimed code is its prefix)."""
        if self.sees_all_areas:
            return True
        # A claim for "4001" covers "400101" but not the province "40" as a whole.
        return bool(area_code) and any(area_code.startswith(prefix) for prefix in self.areas)


def area_clause(principal: Principal, column: Any) -> ColumnElement[bool]:
    """A WHERE clause restricting `column` (a string column of DOPA codes) to the principal's areas."""
    # `column` is typed Any because SQLModel declares table attributes as plain `str` for type checkers;
    # at runtime it must be a SQL expression, and a real string would silently build a wrong clause.
    if isinstance(column, str) or not hasattr(column, "startswith"):
        raise TypeError(f"area_clause needs a SQL column expression, got {type(column).__name__}")
    prefixes = principal.area_prefixes()
    if prefixes is None:
        return true()
    if not prefixes:
        return false()
    # autoescape guards LIKE wildcards; claims are digits only, so this is belt and braces.
    return or_(*(column.startswith(prefix, autoescape=True) for prefix in prefixes))


def ensure_area(principal: Principal, area_code: str) -> None:
    """Raise Forbidden (403) unless `area_code` lies inside the principal's areas."""
    if not principal.can_see(area_code):
        raise Forbidden(f"Area {area_code!r} is outside the areas granted to client {principal.client_id!r}.")
