"""`kaenkhun demo`: the synthetic Khon Kaen (`population`) and the client that loads it through the public HTTP
APIs (`loader`)."""

from ops.demo.loader import Endpoints, Loader, Say, report_urls, run
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

__all__ = ["FAMILY_DEVELOPMENT_CENTRES", "FISCAL_YEAR", "GRANT", "GRANT_FAMILIES", "PROVINCE", "SUBSIDY", "SURNAMES",
           "SURVEYED_ON", "SURVEY_YEAR", "DemoError", "Endpoints", "Home", "Loader", "Member", "People", "Say",
           "Scenario", "assessment_row", "expected", "grant_families", "population", "report_urls", "run"]
