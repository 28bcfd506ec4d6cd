"""Benchmarks run by `storelink bench NAME`; each compares against a bare baseline in the same run."""
