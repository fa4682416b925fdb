"""Settings of the registry service (env prefix KAENKHUN_REGISTRY_)."""

from typing import ClassVar

from pydantic_settings import SettingsConfigDict

from shared.settings import ServiceSettings


class RegistrySettings(ServiceSettings):
    service_name: ClassVar[str] = "registry"
    default_port: ClassVar[int] = 8001
    model_config = SettingsConfigDict(env_prefix="KAENKHUN_REGISTRY_", extra="ignore")
