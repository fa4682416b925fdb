"""Names as compared and searched: `name_key` is the same for every spelling that looks the same on screen."""

from __future__ import annotations

import random
import re
import unicodedata

from shared.text import name_key


def rewritten(value: str) -> str:
    """`name_key` as it is defined, every step taken whatever the name (it skips them for names they leave as
    they are)."""
    text = unicodedata.normalize("NFC", re.sub("[\u00ad\u200b\u200c\u200d\u2060\ufeff]", "", value))
    text = re.sub("\u0e4d([\u0e48-\u0e4b]?)\u0e32", "\\1\u0e33", text)
    return re.sub(r"\s+", " ", text).strip().casefold()


def test_the_key_of_a_name_is_its_rewritten_form_whatever_it_holds() -> None:
    # Thai letters, vowels and tone marks, NIKHAHIT and SARA AA, SARA AM, spaces of every kind, the invisible
    # characters, Latin letters whose case folding or composition changes them.
    alphabet = ["ก", "ค", "น", "ส", "ม", "ใ", "ุ", "่", "้", "๊", "๋", "\u0e4d", "\u0e32", "\u0e33", " ", " ", "\t",
                "\n", "\u00a0", "\u2000", "\u3000", "\u00ad", "\u200b", "\u200c", "\u200d", "\u2060", "\ufeff",
                "A", "b", "ß", "İ", "e", "\u0301", "é", "Ω", "\u2126"]
    rng = random.Random(23)
    names = ["สมชาย", "ค\u0e4d\u0e32ปุ่น", "น\u0e49\u0e4d\u0e32ใจ\u200bดี", " Somchai  Jaidee ", "e\u0301", "", " "]
    names += ["".join(rng.choice(alphabet) for _ in range(rng.randint(1, 8))) for _ in range(20_000)]
    for name in names:
        assert name_key(name) == rewritten(name), ascii(name)
