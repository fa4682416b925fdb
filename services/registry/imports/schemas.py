"""The import file's columns (one row per person; a household's rows are consecutive and share its
`household_key`), and what a job reports."""

from __future__ import annotations

from shared import imports

HOUSEHOLD_COLUMNS = ("household_key", "subdistrict_code", "village_no", "house_no", "lat", "lon", "sources",
                     "welfare_card")
MEMBER_COLUMNS = ("citizen_id", "title", "first_name", "last_name", "sex", "birth_date", "relation", "disability")
COLUMNS = HOUSEHOLD_COLUMNS + MEMBER_COLUMNS


class ImportOut(imports.ImportOut):
    households_created: int
    persons_created: int
    households_unchanged: int


