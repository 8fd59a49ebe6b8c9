#!/usr/bin/env bash
# A plain shell CI: gate on every change, soak cycles nightly; artifacts kept in ./artifacts.
# A recipe for your own repository: plan.yaml and the benchmarks are yours, and enduro is
# installed from wherever you keep it (its repository or your package index).
set -euo pipefail
mkdir -p artifacts
case "${1:-change}" in
  change)
    enduro gate compare --base-ref origin/main \
      --command "pytest benchmarks --benchmark-json=bench.json --benchmark-save-data" \
      --result bench.json --out artifacts/gate
    ;;
  nightly)
    status=0
    enduro cycles plan.yaml --out artifacts || status=$?
    enduro triage --runs artifacts > artifacts/triage.md || true
    exit $status
    ;;
esac
