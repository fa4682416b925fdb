"""Centres and their subsidies, and the reconciliation of every budget with its payments."""
