"""Settings of the assistance service (env prefix KAENKHUN_ASSISTANCE_; citizen-ID hash key KAENKHUN_PII_)."""

from decimal import Decimal
from typing import Annotated, ClassVar

from fastapi import Depends
from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from shared.app import service_settings
from shared.events.registry import Source
from shared.pii import PiiSettings
from shared.settings import ServiceSettings

# Public, documented, refused in production: sign development pushes with it (see the README).
DEV_WEBHOOK_SECRET = "whsec_a2FlbmtodW4gZGV2ZWxvcG1lbnQgd2ViaG9vayBzZWNyZXQ="


PUSH_ITEM_BYTES = 4096


class AssistanceSettings(ServiceSettings):
    service_name: ClassVar[str] = "assistance"
    default_port: ClassVar[int] = 8003
    model_config = SettingsConfigDict(env_prefix="KAENKHUN_ASSISTANCE_", extra="ignore")

    pii: PiiSettings = Field(default_factory=PiiSettings)
    # The ministry's grant system signs its pushes (Standard Webhooks) with one of these; two during a rotation.
    ministry_webhook_secrets: list[SecretStr] = Field(default_factory=lambda: [SecretStr(DEV_WEBHOOK_SECRET)],
                                                      min_length=1)
    webhook_tolerance_s: int = Field(default=300, ge=1)
    # A push still marked in progress after this long (its process died) may be taken over by a retry.
    idempotency_lock_s: int = Field(default=60, ge=1)
    batch_max_items: int = Field(default=10_000, ge=1)
    # The family grant: the most one payment may be, payments per household per fiscal year, and who is
    # eligible besides the target poor of their latest assessment.
    family_grant_amount: Decimal = Field(default=Decimal("3000.00"), gt=0, max_digits=14, decimal_places=2)
    family_grant_yearly_cap: int = Field(default=1, ge=1)
    family_grant_eligible_sources: list[Source] = Field(
        default_factory=lambda: [Source.exclusion_error, Source.vulnerable])
    # Subsidies one family development centre may receive in a fiscal year (one a batch in any case).
    centre_subsidy_yearly_cap: int = Field(default=1, ge=1)

    def body_limits(self) -> dict[str, int]:
        """The pushes take up to `batch_max_items` items: their bodies may be as large as that many items at
        their longest (a 500-character Thai note escaped as \\uXXXX is 3,000 bytes), ≈ 4 KiB an item."""
        batch = self.batch_max_items * PUSH_ITEM_BYTES + 65_536
        return {"/v1/disbursement-batches": batch, "/v1/centre-subsidies": batch}

    def uses_development_material(self) -> list[str]:
        problems = super().uses_development_material() + self.pii.uses_development_material()
        if any(s.get_secret_value() == DEV_WEBHOOK_SECRET for s in self.ministry_webhook_secrets):
            problems.append("KAENKHUN_ASSISTANCE_MINISTRY_WEBHOOK_SECRETS (development secret)")
        return problems


# The settings the app was built with, as a route parameter.
SettingsDep = Annotated[AssistanceSettings, Depends(service_settings)]
