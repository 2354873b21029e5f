"""Thin wrappers around the stages: the demo and the benchmarks (`python -m scripts.bench`)."""
