"""``enduro dashboard``: a live page of a run, served from the run's own files (state.json,
metrics.sqlite read-only, events.jsonl, results.json), so it adds no work to the runner."""
