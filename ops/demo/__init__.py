"""`kaenkhun demo`: the synthetic Khon Kaen (`population`), the client that loads it through the public HTTP APIs
(`loader`), and one whole run (`run`)."""

from ops.demo.loader import Endpoints, Loader, Say
from ops.demo.population import (
    FAMILY_DEVELOPMENT_CENTRES,
    FISCAL_YEAR,
    GRANT,
    GRANT_FAMILIES,
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
    grant_families,
    population,
)
from ops.demo.run import reader_note, report_urls, run

__all__ = ["FAMILY_DEVELOPMENT_CENTRES", "FISCAL_YEAR", "GRANT", "GRANT_FAMILIES", "PROVINCE", "SUBSIDY", "SURNAMES",
           "SURVEYED_ON", "SURVEY_YEAR", "DemoError", "Endpoints", "Home", "Loader", "Member", "People", "Say",
           "Scenario", "assessment_row", "expected", "grant_families", "population", "reader_note", "report_urls",
           "run"]
