"""Benchmarks of deucalion, each side by side with what a user would use instead."""
