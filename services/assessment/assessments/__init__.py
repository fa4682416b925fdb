"""Assessments: record one (scored against its indicator set), read them back, explained."""
