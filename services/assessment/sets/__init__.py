"""Indicator sets: their data files, the versions the database holds, and their routes."""
