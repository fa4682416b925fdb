"""Households and their members: the register itself."""
