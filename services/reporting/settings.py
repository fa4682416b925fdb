"""Settings of the reporting service (env prefix KAENKHUN_REPORTING_)."""

from typing import Annotated, ClassVar

from fastapi import Depends
from pydantic import Field
from pydantic_settings import SettingsConfigDict

from shared.app import service_settings
from shared.settings import Environment, ServiceSettings


class ReportingSettings(ServiceSettings):
    service_name: ClassVar[str] = "reporting"
    default_port: ClassVar[int] = 8004
    model_config = SettingsConfigDict(env_prefix="KAENKHUN_REPORTING_", extra="ignore")

    # Counts from 1 to this are suppressed for callers without reporting:detail (0 turns suppression off).
    small_count_max: int = Field(default=4, ge=0)
    # Areas whose suppressed reports anyone may read without a token (the dashboard as a publication).
    # None: every area in development, none in production.
    public_areas: list[str] | None = None

    def public(self) -> list[str]:
        if self.public_areas is not None:
            return self.public_areas
        return ["*"] if self.env is Environment.development else []


# The settings the app was built with, as a route parameter.
SettingsDep = Annotated[ReportingSettings, Depends(service_settings)]
