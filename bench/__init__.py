"""Benchmarks (`make bench`): figures printed as ratios against a baseline run in the same command."""
