"""The official area hierarchy (DOPA codes from `geothai`): province → district → sub-district → village.

Pure lookups, used by every service that names areas (the registry's routes, reports, MPI by area).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

import geothai

Level = Literal["province", "district", "subdistrict", "village"]
_LEVEL_BY_LENGTH: dict[int, Level] = {2: "province", 4: "district", 6: "subdistrict", 8: "village"}
AREA_CODE_PATTERN = r"^(\d{2}|\d{4}|\d{6}|\d{8})$"


@dataclass(frozen=True)
class Area:
    """One area: its code, level, names and parent."""

    code: str
    level: Level
    name_th: str
    name_en: str
    parent_code: str | None


def village_code(subdistrict_code: str, village_no: int) -> str:
    """A village's code: the sub-district code and the village number (หมู่ที่) in two digits."""
    return f"{subdistrict_code}{village_no:02d}"


def find(code: str) -> Area | None:
    """The area with this DOPA code (a village only needs its sub-district to exist), or None."""
    if not re.fullmatch(r"\d+", code):
        return None
    level = _LEVEL_BY_LENGTH.get(len(code))
    if level == "province":
        p = geothai.province(code)
        return Area(p.code, level, p.name_th, p.name_en, None) if p else None
    if level == "district":
        d = geothai.district(code)
        return Area(d.code, level, d.name_th, d.name_en, d.province_code) if d else None
    if level == "subdistrict":
        s = geothai.subdistrict(code)
        return Area(s.code, level, s.name_th, s.name_en, s.district_code) if s else None
    if level == "village":
        s = geothai.subdistrict(code[:6])
        number = int(code[6:])
        if s is None or number < 1:
            return None
        return Area(code, level, f"หมู่ที่ {number} {s.name_th}", f"Village {number}, {s.name_en}", s.code)
    return None


def provinces() -> list[Area]:
    """Every province, by code."""
    return [Area(p.code, "province", p.name_th, p.name_en, None) for p in geothai.provinces()]


def children(area: Area) -> list[Area]:
    """The official children of a province or district (villages come from the register, see the route)."""
    if area.level == "province":
        return [Area(d.code, "district", d.name_th, d.name_en, area.code) for d in geothai.districts(area.code)]
    if area.level == "district":
        return [Area(s.code, "subdistrict", s.name_th, s.name_en, area.code) for s in geothai.subdistricts(area.code)]
    return []


def search(query: str, limit: int) -> list[Area]:
    """Areas whose Thai or English name matches `query` (geothai's search: exact, prefix, then contains)."""
    found: list[Area] = []
    for result in geothai.search(query, limit=limit):
        area = find(result.area.code)
        if area is not None:
            found.append(area)
    return found
