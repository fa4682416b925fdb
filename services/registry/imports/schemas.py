"""The import file's columns (one row per person; a household's rows are consecutive and share its
`household_key`), and what a job reports."""

from __future__ import annotations

from shared import imports

HOUSEHOLD_COLUMNS = ("household_key", "subdistrict_code", "village_no", "house_no", "lat", "lon", "sources",
                     "welfare_card")
MEMBER_COLUMNS = ("citizen_id", "title", "first_name", "last_name", "sex", "birth_date", "relation", "phone",
                  "disability")
COLUMNS = HOUSEHOLD_COLUMNS + MEMBER_COLUMNS
# Columns a file may leave out altogether (as if every cell were empty); the others must be in the header.
OPTIONAL_COLUMNS = ("lat", "lon", "phone")
REQUIRED_COLUMNS = tuple(c for c in COLUMNS if c not in OPTIONAL_COLUMNS)
KEY_LENGTH = 64  # a `household_key` is kept on its household (`household.household_key`)


class ImportOut(imports.ImportOut):
    households_created: int
    persons_created: int
    households_unchanged: int


