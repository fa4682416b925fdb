"""Benchmarks; each prints figures and asserts no time (`python -m bench.<name>`)."""
