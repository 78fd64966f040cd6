"""Benchmarks: each runs alone (`python -m bench.NAME`); `python -m bench.run_all` runs all."""
