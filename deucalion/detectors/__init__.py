"""Detectors: score functions over windows of past values, and ready observers."""
