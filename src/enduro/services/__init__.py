"""Services under test: staging, launch, readiness, supervision, crash capture, drivers."""
