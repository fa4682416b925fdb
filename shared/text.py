"""Text fields people type: kept exactly as given (Thai included) and trimmed; names and the like on one line
(`Text`), notes on several (`Notes`)."""

from __future__ import annotations

import re
import unicodedata
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


# What two spellings of one name that look the same on screen differ in: SARA AM typed as NIKHAHIT + SARA AA
# (U+0E4D U+0E32) instead of U+0E33, invisible characters (zero-width space and joiners, word joiner, BOM,
# soft hyphen), runs of spaces, and Unicode composition (NFC). Names are stored as entered and compared on this.
_INVISIBLE = re.compile("[\u00ad\u200b\u200c\u200d\u2060\ufeff]")
_SPACES = re.compile(r"\s+")
# NIKHAHIT, then a tone mark or not, then SARA AA: SARA AM typed in two keystrokes (the tone mark goes first).
_SARA_AM = re.compile("\u0e4d([\u0e48-\u0e4b]?)\u0e32")


# What makes a name's key more than its NFC form case folded: an invisible character, NIKHAHIT, whitespace other
# than single spaces between words. Most names have none, and skip the rewriting (a bulk import keys every name).
_REWRITTEN = re.compile("[\u00ad\u200b\u200c\u200d\u2060\ufeff\u0e4d]|[^\\S ]|  |^ | $")


def name_key(value: str) -> str:
    """The form a name is compared and searched on (duplicates, search): NFC, SARA AM composed, invisible
    characters and repeated spaces removed, case folded (Latin names)."""
    if _REWRITTEN.search(value) is None:
        return unicodedata.normalize("NFC", value).casefold()
    text = unicodedata.normalize("NFC", _INVISIBLE.sub("", value))
    text = _SARA_AM.sub("\\1\u0e33", text)
    return _SPACES.sub(" ", text).strip().casefold()
