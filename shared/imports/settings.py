"""The settings every service's imports share: how a job is leased among the replicas, and how its upload is
stored. A service's settings class inherits them (env `KAENKHUN_<SERVICE>_IMPORT_LEASE_S` ...)."""

from __future__ import annotations

from typing import Self

from pydantic import BaseModel, Field, model_validator


class ImportSettings(BaseModel):
    import_lease_s: float = Field(default=30.0, gt=0, description=(
        "a job is its replica's for this long after its last heartbeat (by the database's clock); a replica "
        "that died mid-import loses it then, and another one takes it over from its last checkpoint"))
    import_heartbeat_s: float = Field(default=10.0, gt=0, description="how often a replica renews its jobs' leases")
    import_poll_s: float = Field(default=5.0, gt=0, description=(
        "how often a replica looks for jobs to take: queued, or with a lease that ran out"))
    import_stored_chunk_bytes: int = Field(default=1024 * 1024, ge=4096, le=64 * 1024 * 1024, description=(
        "an upload is stored in the database in pieces of this size"))

    @model_validator(mode="after")
    def _heartbeat_within_the_lease(self) -> Self:
        if self.import_heartbeat_s >= self.import_lease_s:
            raise ValueError("import_heartbeat_s must be shorter than import_lease_s")
        return self
