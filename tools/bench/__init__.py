"""Benchmark suite of stepwire (``nox -s bench``); scripts, not tests: pytest collects none."""
