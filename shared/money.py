"""Money and Thai fiscal years.

Amounts are Thai baht with 2 decimals (satang), `Decimal` in code and NUMERIC(14, 2) in the database, never
floats. A Thai fiscal year runs 1 October – 30 September and is named by the Buddhist Era year it ends in:
FY 2565 = 1 Oct 2021 – 30 Sep 2022.
"""

from __future__ import annotations

import re
from datetime import date
from decimal import Decimal
from typing import Annotated, Any

from pydantic import BeforeValidator, Field, PlainSerializer, WithJsonSchema
from sqlalchemy import Numeric

BE_OFFSET = 543

# The forms an amount may take in JSON: a string of plain digits with at most two decimals ("3000.00", "3000",
# "0.50") or a whole JSON number (3000). Not a fraction as a JSON number (a float: 0.1 is not exact), not an
# exponent ("1e3"), not a sign, not spaces around it, not leading zeros.
_AMOUNT_TEXT = re.compile(r"(0|[1-9][0-9]{0,11})(\.[0-9]{1,2})?")
AMOUNT_FORMS = 'a string of digits with at most two decimals ("3000.00") or a whole number (3000)'


def _exact_amount(value: Any) -> Any:
    if isinstance(value, Decimal) or (isinstance(value, int) and not isinstance(value, bool)):
        return value
    if isinstance(value, str) and _AMOUNT_TEXT.fullmatch(value):
        return Decimal(value)
    raise ValueError(f"an amount must be {AMOUNT_FORMS}")


def _amount_schema(minimum: int, example: str) -> WithJsonSchema:
    """What the OpenAPI documents say a request may send (responses always carry the string)."""
    return WithJsonSchema({"anyOf": [{"type": "string", "pattern": f"^{_AMOUNT_TEXT.pattern}$"},
                                     {"type": "integer", "minimum": minimum, "maximum": 999_999_999_999}],
                           "description": f"baht: {AMOUNT_FORMS}", "examples": [example]}, mode="validation")


# A positive amount of baht with at most 2 decimals; JSON carries it as a string ("3000.00") so no client
# parses it as a float.
Money = Annotated[
    Decimal,
    Field(gt=0, max_digits=14, decimal_places=2, allow_inf_nan=False),
    BeforeValidator(_exact_amount),
    _amount_schema(1, "3000.00"),
    PlainSerializer(lambda value: f"{value:.2f}", return_type=str, when_used="json"),
]
# The same for a budget, which may be zero.
Amount = Annotated[
    Decimal,
    Field(ge=0, max_digits=14, decimal_places=2, allow_inf_nan=False),
    BeforeValidator(_exact_amount),
    _amount_schema(0, "1080000.00"),
    PlainSerializer(lambda value: f"{value:.2f}", return_type=str, when_used="json"),
]
FiscalYear = Annotated[int, Field(ge=2500, le=2700, description="Thai fiscal year, B.E. (FY 2565 ends 30 Sep 2022)")]

ZERO = Decimal("0.00")


def money_column() -> Numeric:  # type: ignore[type-arg]
    """NUMERIC(14, 2), returned as Decimal."""
    return Numeric(14, 2, asdecimal=True)


def baht(value: Decimal | int | str) -> Decimal:
    """Quantised to satang."""
    return Decimal(value).quantize(Decimal("0.01"))


def fiscal_year(on: date) -> int:
    """The Thai fiscal year (B.E.) a date falls in."""
    return on.year + BE_OFFSET + (1 if on.month >= 10 else 0)


def fiscal_year_bounds(year: int) -> tuple[date, date]:
    """First and last day of a Thai fiscal year (B.E.)."""
    ce = year - BE_OFFSET
    return date(ce - 1, 10, 1), date(ce, 9, 30)
