"""Benchmarks: `python -m bench.run` writes docs/benchmarks.md (see its --help)."""
