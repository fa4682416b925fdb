"""Bulk import of households from a CSV file (one row per person)."""
