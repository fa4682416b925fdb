"""Settings of the assessment service (env prefix KAENKHUN_ASSESSMENT_)."""

from typing import ClassVar

from pydantic_settings import SettingsConfigDict

from shared.settings import ServiceSettings


class AssessmentSettings(ServiceSettings):
    service_name: ClassVar[str] = "assessment"
    default_port: ClassVar[int] = 8002
    model_config = SettingsConfigDict(env_prefix="KAENKHUN_ASSESSMENT_", extra="ignore")
