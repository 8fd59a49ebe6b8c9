"""Faults: a seeded timeline, fault kinds with an undo journal, a TCP/HTTP proxy with toxics."""
