"""Benchmarks of gapfill: compute and latency (`python -m benchmarks.latency`), restoration quality
(`python -m benchmarks.quality`). Run from the repository root; each prints a table and writes JSON."""
