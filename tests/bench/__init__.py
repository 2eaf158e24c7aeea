"""Benchmarks on the local cloud (`make bench`): not tests, never collected by pytest (no test_* modules)."""
