"""Layered suites, test loops and soak cycles."""
