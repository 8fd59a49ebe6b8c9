"""Detached runs: start, status, stop, collect, runs, band."""
