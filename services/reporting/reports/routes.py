"""GET /v1/reports/…: the reports — poverty by area, the MPI's decomposition, assistance by area, monthly
progress, the field network (areas, teams, centres), field work (visits, referrals) — and what the read models
hold (years, freshness).

Every figure comes from the read models (`projection`); every report is a `table.Table`, so it is suppressed
(`table.disclose`) and exported (JSON, CSV, Parquet) one way and carries `as_of`, the newest event it reflects.
Each report is a module of its own (columns, rules, route); this one gathers their routes under one prefix, in
the order the API lists them.
"""

from fastapi import APIRouter

from services.reporting.reports import assistance, field_network, freshness, mpi_decomposition, poverty, progress
from services.reporting.reports.field_work import routes as field_work

router = APIRouter(prefix="/v1/reports", tags=["reports"])
for report in (poverty, mpi_decomposition, assistance, progress, field_network, field_work, freshness):
    router.include_router(report.router)
