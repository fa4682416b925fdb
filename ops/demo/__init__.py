"""`kaenkhun demo`: the synthetic Khon Kaen (`population`), the client that loads it through the public HTTP APIs
(`loader`), and one whole run (`run`)."""

from ops.demo.loader import Endpoints, Loader, Say
from ops.demo.population import (
    ENTERED,
    EXITED,
    FAMILY_DEVELOPMENT_CENTRES,
    FISCAL_YEAR,
    GRANT,
    GRANT_FAMILIES,
    NEXT_SURVEY_YEAR,
    PROVINCE,
    SUBSIDY,
    SURNAMES,
    SURVEY_YEAR,
    SURVEYED_ON,
    DemoError,
    Home,
    Member,
    People,
    Scenario,
    assessment_row,
    expected,
    field_homes,
    grant_families,
    next_year_fails,
    population,
)
from ops.demo.run import report_urls, run

__all__ = ["ENTERED", "EXITED", "FAMILY_DEVELOPMENT_CENTRES", "FISCAL_YEAR", "GRANT", "GRANT_FAMILIES",
           "NEXT_SURVEY_YEAR", "PROVINCE", "SUBSIDY", "SURNAMES", "SURVEYED_ON", "SURVEY_YEAR", "DemoError",
           "Endpoints", "Home", "Loader", "Member", "People", "Say", "Scenario", "assessment_row", "expected",
           "field_homes", "grant_families", "next_year_fails", "population", "report_urls", "run"]
