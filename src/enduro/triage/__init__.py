"""Triage: crashes and error lines of collected logs, grouped into root causes."""
