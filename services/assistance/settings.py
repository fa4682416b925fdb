"""Settings of the assistance service (env prefix KAENKHUN_ASSISTANCE_)."""

from typing import ClassVar

from pydantic_settings import SettingsConfigDict

from shared.settings import ServiceSettings


class AssistanceSettings(ServiceSettings):
    service_name: ClassVar[str] = "assistance"
    default_port: ClassVar[int] = 8003
    model_config = SettingsConfigDict(env_prefix="KAENKHUN_ASSISTANCE_", extra="ignore")
