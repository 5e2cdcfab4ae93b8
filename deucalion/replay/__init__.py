"""Replay: recorded or stored history run through observers, and its evaluation (NAB scoring)."""
