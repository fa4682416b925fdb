"""Settings of outgoing webhooks (env prefix KAENKHUN_WEBHOOK_), the same for every service."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class WebhookSettings(BaseSettings):
    """How a service delivers its events to subscribers: retries, time-outs, concurrency, allowed targets."""

    model_config = SettingsConfigDict(env_prefix="KAENKHUN_WEBHOOK_", extra="ignore")

    retry_hours: float = Field(default=24.0, gt=0, description=(
        "A subscription whose deliveries have failed for this long (no success since) is disabled, with the "
        "reason; its deliveries stay, to be sent again by a redelivery."))
    backoff_base_s: float = Field(default=5.0, gt=0, description="delay before the first retry; doubled each time")
    backoff_max_s: float = Field(default=3600.0, gt=0, description="the longest delay between two attempts")
    timeout_s: float = Field(default=10.0, gt=0, description="a receiver that has not answered by then has failed")
    per_subscription: int = Field(default=4, ge=1, description=(
        "deliveries in flight to one subscription at once (one per household at most: a household's events "
        "go in order)"))
    max_in_flight: int = Field(default=64, ge=1, description="deliveries in flight from this process at once")
    poll_interval_s: float = Field(default=1.0, gt=0, description="how often due retries are looked for")
    lease_s: float = Field(default=120.0, gt=0, description=(
        "a delivery taken by a replica is not taken by another for this long (a replica that died mid-delivery: "
        "another sends it after the lease); longer than timeout_s"))
    rotation_grace_hours: float = Field(default=24.0, ge=0, description=(
        "after a secret rotation the previous secret signs too (two signatures) for this long"))
    allow_private_targets: bool | None = Field(default=None, description=(
        "allow URLs that resolve to loopback, link-local, private, multicast or reserved addresses, and plain "
        "http; unset: allowed in development, refused in production (SSRF)"))

    def private_allowed(self, production: bool) -> bool:
        return (not production) if self.allow_private_targets is None else self.allow_private_targets
