"""The import routes: upload a CSV file (202, the job runs in the background), the job, its row errors."""

from __future__ import annotations

from services.registry.imports.schemas import ImportOut
from services.registry.security import can_register
from shared import imports

router = imports.import_router("/v1/imports", ImportOut, can_register,
                                summary="Import households from a CSV file (one row per person)")
