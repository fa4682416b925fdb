"""Settings of the assessment service (env prefix KAENKHUN_ASSESSMENT_)."""

from pathlib import Path
from typing import Annotated, ClassVar

from fastapi import Depends
from pydantic import Field
from pydantic_settings import SettingsConfigDict

from shared.app import service_settings
from shared.imports import ImportSettings
from shared.indicators import SETS_DIR
from shared.settings import ServiceSettings


class AssessmentSettings(ServiceSettings, ImportSettings):
    service_name: ClassVar[str] = "assessment"
    default_port: ClassVar[int] = 8002
    model_config = SettingsConfigDict(env_prefix="KAENKHUN_ASSESSMENT_", extra="ignore")

    # Folder of indicator set files (*.toml): a new set or version is a new file, no code change.
    indicator_sets_dir: Path = SETS_DIR
    # Retry-After of the 409 for a household the registry has not announced yet.
    unknown_household_retry_after_s: int = Field(default=5, ge=1)
    # Bulk import: rows per transaction, at most this many row errors kept per import, largest file (the lease
    # and the stored upload's pieces: `ImportSettings`).
    import_chunk_rows: int = Field(default=500, ge=1)
    import_max_errors: int = Field(default=10_000, ge=0)
    import_max_bytes: int = Field(default=512 * 1024 * 1024, ge=1)


# The settings the app was built with, as a route parameter.
SettingsDep = Annotated[AssessmentSettings, Depends(service_settings)]
