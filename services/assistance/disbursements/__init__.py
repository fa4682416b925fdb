"""Family grants pushed by the ministry, item by item: matched, checked, accepted or rejected; reversals."""
