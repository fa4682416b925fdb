"""Settings of the registry service (env prefix KAENKHUN_REGISTRY_; citizen-ID keys KAENKHUN_PII_)."""

from typing import Annotated, ClassVar

from fastapi import Depends
from pydantic import Field
from pydantic_settings import SettingsConfigDict

from shared.app import service_settings
from shared.imports import ImportSettings
from shared.pii import PiiSettings
from shared.settings import ServiceSettings


class RegistrySettings(ServiceSettings, ImportSettings):
    service_name: ClassVar[str] = "registry"
    default_port: ClassVar[int] = 8001
    model_config = SettingsConfigDict(env_prefix="KAENKHUN_REGISTRY_", extra="ignore")

    pii: PiiSettings = Field(default_factory=PiiSettings)
    # Bulk import: households per transaction, and at most this many row errors kept per import (the lease
    # and the stored upload's pieces: `ImportSettings`).
    import_chunk_households: int = 500
    import_max_errors: int = 10_000
    import_max_bytes: int = 512 * 1024 * 1024

    def uses_development_material(self) -> list[str]:
        return super().uses_development_material() + self.pii.uses_development_material()


# The settings the app was built with, as a route parameter.
SettingsDep = Annotated[RegistrySettings, Depends(service_settings)]
