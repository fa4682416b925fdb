"""Bulk CSV imports, one mechanism for every service: the tables (`models`), reading the file (`parsing`), the
background job (`runner`) and the HTTP side (`routes`); services use it as `from shared import imports`."""

from shared.imports.models import ImportJobColumns, ImportRowErrorColumns
from shared.imports.parsing import RowError, csv_rows, missing_columns, parse_flag
from shared.imports.routes import ImportErrorOut, ImportOut, import_router, upload_name
from shared.imports.runner import Counts, ImportJobs, Item, running_jobs

__all__ = [
    "Counts", "ImportErrorOut", "ImportJobColumns", "ImportJobs", "ImportOut", "ImportRowErrorColumns", "Item",
    "RowError", "csv_rows", "import_router", "missing_columns", "parse_flag", "running_jobs", "upload_name",
]
