"""The BI views' contract, written once: what each view and each column means, its unit and how the public
reports protect it. The PostgreSQL comments (`COMMENT ON VIEW/COLUMN`, `apply_comments`) and
docs/data-dictionary.md (`services.reporting.dictionary`) are both made from here.

The views' SQL lives in the migrations (0006 and later), frozen as each migration made it: a migration must create
the same views whenever it runs. Their comments and the reference table of areas (`rpt_area`, `sync_areas`) are
not frozen: they are documentation and reference data, applied from this module by the migration that changes
the views, for the columns the database actually has. tests/reporting/test_bi.py checks that every view has
exactly the columns documented here, and on PostgreSQL that every view and column carries a comment.

One name means one thing: a column of the same name means the same in every view and in the reports' exports.
The views hold exact figures: they are for the BI role (`kaenkhun bi-role`), entitled like
`reporting:detail`. "Suppression" says how the public reports (callers without reporting:detail) protect the
same figure.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Connection

from shared import areas


@dataclass(frozen=True)
class Doc:
    description: str
    unit: str
    suppression: str


@dataclass(frozen=True)
class View:
    name: str
    description: str
    columns: tuple[str, ...]


EXACT = "none: not about households"
_LEVELS = "province, district, subdistrict or village"


def _count(group: str | None = None) -> str:
    shared = f", together with {group} (one pattern)" if group else ""
    return f"count: hidden in public reports when 1 to the small-count threshold, or as a complement{shared}"


def _public(counts: str) -> str:
    return (f"not in the public reports as such; they give {counts}, counts hidden when 1 to the small-count "
            "threshold or as a complement")


def _follows(counts: str) -> str:
    return f"hidden in public reports wherever {counts} is hidden"


def _areas_of(prefix: str, what: str, note: str = "") -> dict[str, Doc]:
    return {f"{prefix}_code": Doc(f"DOPA code of the {what}", "code", EXACT),
            f"{prefix}_name_th": Doc(f"Thai name of the {what}{note}", "text", EXACT),
            f"{prefix}_name_en": Doc(f"English name of the {what}{note}", "text", EXACT)}


_DIMS = ("health", "living", "education", "income", "access")
COLUMNS: dict[str, Doc] = {
    "survey_year": Doc("survey year of the assessments", "year (B.E.)", EXACT),
    "fiscal_year": Doc("fiscal year (October to September) of the payments or budget", "year (B.E.)", EXACT),
    "level": Doc(f"level of the row's area: {_LEVELS}", "text", EXACT),
    "parent_code": Doc("DOPA code of the area one level up (none for a province)", "code", EXACT),
    **_areas_of("area", "row's area", " (a village: its sub-district's name, then หมู่ที่ / Moo and its number)"),
    **_areas_of("province", "province the area lies in"),
    **_areas_of("district", "district the area lies in (none above district level)"),
    **_areas_of("subdistrict", "sub-district the area lies in (none above sub-district level)"),
    "village_code": Doc("DOPA code of the village (the same as area_code; kept for dashboards made before it)",
                        "code", EXACT),
    "households": Doc("open households registered in the village now", "households", _count("persons")),
    "persons": Doc("members of those households", "persons", _count("households")),
    "welfare_card_households": Doc("open households on the state welfare-card register now", "households",
                                   _count("welfare_card_persons")),
    "welfare_card_persons": Doc("members of those households (TPMAP: welfare-card persons)", "persons",
                                _count("welfare_card_households")),
    "assessed_households": Doc("households with an assessment in the survey year", "households",
                               _count("assessed_persons")),
    "assessed_persons": Doc("n: members of assessed households", "persons", _count("assessed_households")),
    "target_poor_households": Doc("TPMAP target poor: deprived in at least one dimension and on the welfare-card "
                                  "register (if the indicator set requires it)", "households",
                                  _count("target_poor_persons")),
    "target_poor_persons": Doc("members of target-poor households (TPMAP: target-poor persons, any dimension)",
                               "persons", _count("target_poor_households")),
    "poor_households": Doc("Alkire–Foster poor: deprivation score c ≥ k", "households", _count("poor_persons")),
    "poor_persons": Doc("q: members of poor households", "persons", _count("poor_households")),
    **{f"deprived_{d}": Doc(f"assessed households deprived in {d} (failing an indicator of it), target poor or "
                            "not", "households", _count()) for d in _DIMS},
    **{f"target_poor_households_{d}": Doc(f"target-poor households deprived in {d}", "households",
                                          _count(f"target_poor_persons_{d}")) for d in _DIMS},
    **{f"target_poor_persons_{d}": Doc(f"TPMAP target-poor persons by dimension, {d}: members of target-poor "
                                       f"households deprived in {d} (a person counts in every dimension their "
                                       "household is deprived in: the five add up to more than the total)",
                                       "persons", _count(f"target_poor_households_{d}")) for d in _DIMS},
    "exited": Doc("households target poor in their previous survey year and not in this one", "households",
                  _count()),
    "entered": Doc("households not target poor in their previous survey year and target poor in this one",
                   "households", _count()),
    "censored_score_value": Doc("Σ persons × censored deprivation score c(k) of the poor: sum it and divide by "
                                "the sum of assessed_persons for the MPI (M0)", "person-score (number)",
                                _follows("poor_persons or assessed_persons")),
    "programme": Doc("assistance programme (family_grant, centre_subsidy, …)", "code", EXACT),
    "payments": Doc("payments recorded, standing or reversed", "payments",
                    _public("families_granted, grants_reversed and centres_subsidised")),
    "payments_standing": Doc("payments not reversed", "payments", _public("families_granted and centres_subsidised")),
    "payments_reversed": Doc("payments reversed", "payments", _public("grants_reversed")),
    "recipients": Doc("distinct households or centres paid (standing payments)", "households or centres",
                      _public("families_granted and centres_subsidised")),
    "amount": Doc("baht paid by standing payments", "baht (2 decimals)",
                  _follows("families_granted or centres_subsidised")),
    "budget_allocated": Doc("baht the budget holds for the fiscal year", "baht (2 decimals)", EXACT),
    "budget_used": Doc("baht of standing payments drawn on the budget", "baht (2 decimals)",
                       _follows("families_granted or centres_subsidised")),
    "budget_remaining": Doc("budget_allocated − budget_used", "baht (2 decimals)",
                            _follows("families_granted or centres_subsidised")),
    "given_on": Doc("day the help was given", "date", EXACT),
    "partner_sector": Doc("sector of the partner agency that helped (government, private, civil society, …)",
                          "code", EXACT),
    "kind": Doc("kind of help (cash, in kind, service, …)", "code", EXACT),
    "help_records": Doc("help records", "records", _public("households_helped")),
    "households_helped": Doc("distinct households helped", "households", _count()),
    "help_value": Doc("baht value of the help, where it has one", "baht (2 decimals)",
                      _follows("households_helped")),
}

_PLACE = ("level", "area_code", "area_name_th", "area_name_en", "province_code", "province_name_th",
          "province_name_en", "district_code", "district_name_th", "district_name_en", "subdistrict_code",
          "subdistrict_name_th", "subdistrict_name_en")
POVERTY_VIEW_COUNTS = ("households", "persons", "welfare_card_households", "welfare_card_persons",
                       "assessed_households", "assessed_persons", "target_poor_households", "target_poor_persons",
                       "poor_households", "poor_persons", *(f"deprived_{d}" for d in _DIMS),
                       *(f"target_poor_households_{d}" for d in _DIMS), *(f"target_poor_persons_{d}" for d in _DIMS),
                       "exited", "entered")
VIEWS = (
    View("report_areas", "The official areas (provinces, districts, sub-districts) and the villages with "
         "registered households: codes, Thai and English names, parents. One row per area.",
         ("area_code", "level", "area_name_th", "area_name_en", "parent_code", "province_code", "district_code",
          "subdistrict_code")),
    View("report_poverty_by_area", "Poverty by survey year and village: the poverty report's counts (TPMAP's "
         "columns among them) at village level, to be summed to any level. One row per survey year and village "
         "with assessments; households and welfare cards are those registered now.",
         ("survey_year", *_PLACE, "village_code", *POVERTY_VIEW_COUNTS, "censored_score_value")),
    View("report_assistance_by_area", "Payments by fiscal year, programme and area paid (a household's village, "
         "a centre's sub-district). One row per fiscal year, programme and area.",
         ("fiscal_year", "programme", *_PLACE, "payments", "payments_standing", "payments_reversed", "recipients",
          "amount")),
    View("report_budgets", "Budgets: what each holds and the standing payments drawn on it. One row per budget.",
         ("fiscal_year", "programme", *_PLACE, "budget_allocated", "budget_used", "budget_remaining")),
    View("report_help_by_area", "Partners' help by day, village, partner sector and kind. One row per day, "
         "village, sector and kind.",
         ("given_on", *_PLACE, "partner_sector", "kind", "help_records", "households_helped", "help_value")),
)
BI_VIEWS = tuple(view.name for view in VIEWS)


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def comment_text(doc: Doc) -> str:
    return f"{doc.description}. Unit: {doc.unit}. Suppression: {doc.suppression}."


def apply_comments(connection: Connection) -> None:
    """COMMENT ON every view of `VIEWS` the database has and on each of its columns (PostgreSQL; SQLite has no
    comments). A column nothing documents gets none: the test of the views finds it."""
    if connection.dialect.name != "postgresql":
        return
    for view in VIEWS:
        columns = connection.execute(text(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema() "
            "AND table_name = :view"), {"view": view.name}).scalars().all()
        if not columns:
            continue
        connection.execute(text(f"COMMENT ON VIEW {view.name} IS {_literal(view.description)}"))
        for column in columns:
            doc = COLUMNS.get(column)
            if doc is not None:
                connection.execute(text(f'COMMENT ON COLUMN {view.name}."{column}" IS {_literal(comment_text(doc))}'))


def area_rows() -> list[dict[str, Any]]:
    """Every province, district and sub-district of `shared.areas`, as rows of `rpt_area`."""
    rows: list[dict[str, Any]] = []
    for province in areas.provinces():
        rows.append({"code": province.code, "level": "province", "name_th": province.name_th,
                     "name_en": province.name_en, "parent_code": None, "province_code": province.code,
                     "district_code": None, "subdistrict_code": None})
        for district in areas.children(province):
            rows.append({"code": district.code, "level": "district", "name_th": district.name_th,
                         "name_en": district.name_en, "parent_code": province.code, "province_code": province.code,
                         "district_code": district.code, "subdistrict_code": None})
            rows.extend({"code": s.code, "level": "subdistrict", "name_th": s.name_th, "name_en": s.name_en,
                         "parent_code": district.code, "province_code": province.code,
                         "district_code": district.code, "subdistrict_code": s.code}
                        for s in areas.children(district))
    return rows


def sync_areas(connection: Connection) -> int:
    """Make `rpt_area` hold exactly `area_rows()` (run again after geothai's data changes: idempotent)."""
    rows = area_rows()
    connection.execute(text("DELETE FROM rpt_area"))
    connection.execute(text(
        "INSERT INTO rpt_area (code, level, name_th, name_en, parent_code, province_code, district_code, "
        "subdistrict_code) VALUES (:code, :level, :name_th, :name_en, :parent_code, :province_code, "
        ":district_code, :subdistrict_code)"), rows)
    return len(rows)
