router = imports.import_router("/v1/imports", ImportOut, can_register,
                                summary="Import households from a CSV file (one row per person)")
