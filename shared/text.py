"""Text fields people type: kept exactly as given (Thai included) and trimmed; names and the like on one line
(`Text`), notes on several (`Notes`)."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, StringConstraints

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _no_control_characters(value: str) -> str:
    if _CONTROL.search(value):
        raise ValueError("control characters (such as NUL or line breaks) are not allowed")
    return value


Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1), AfterValidator(_no_control_characters)]

_CONTROL_EXCEPT_LINES = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def _no_control_characters_but_lines(value: str) -> str:
    if _CONTROL_EXCEPT_LINES.search(value):
        raise ValueError("control characters (such as NUL) are not allowed")
    return value


# Free text people write in the field (notes, outcomes): several lines and tabs allowed, NUL and the other
# control characters not (PostgreSQL cannot store NUL in text, and nobody means to type it).
Notes = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1),
                  AfterValidator(_no_control_characters_but_lines)]
