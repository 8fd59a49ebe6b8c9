"""The performance gate: benchmark readers, comparison statistics, thresholds."""
