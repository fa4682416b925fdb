"""Bulk CSV imports, one mechanism for every service: the tables (`models`, `migrations`), reading the file
(`parsing`), the background job any replica can run (`runner`), its settings (`settings`) and the HTTP side
(`routes`); services use it as `from shared import imports`."""

from shared.imports.models import ImportChunkColumns, ImportJobColumns, ImportRowErrorColumns
from shared.imports.parsing import RowError, Upload, csv_rows, missing_columns, parse_flag
from shared.imports.routes import ImportErrorOut, ImportOut, ImportProgress, import_router, upload_name
from shared.imports.runner import Checkpoint, Counts, ImportJobs, Item, TakenOver, Unit, running_jobs
from shared.imports.settings import ImportSettings

__all__ = [
    "Checkpoint", "Counts", "ImportChunkColumns", "ImportErrorOut", "ImportJobColumns", "ImportJobs", "ImportOut",
    "ImportProgress", "ImportRowErrorColumns", "ImportSettings", "Item", "RowError", "TakenOver", "Unit", "Upload",
    "csv_rows", "import_router", "missing_columns", "parse_flag", "running_jobs", "upload_name",
]
