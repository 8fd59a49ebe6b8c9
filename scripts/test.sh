#!/usr/bin/env bash
# Install what the tests need (only what is missing) and run lint, types and the test suite.
# Extra arguments go to pytest, e.g. `bash scripts/test.sh -k engine`.
set -euo pipefail
cd "$(dirname "$0")/.."

# pip must not install into a Python the OS manages (PEP 668: Debian/Ubuntu's /usr/bin/python3):
# that breaks system tools. A virtual environment, pyenv or a container's own Python is fine.
if python3 - <<'PY'
import os, sys, sysconfig
in_venv = sys.prefix != sys.base_prefix
marker = os.path.join(sysconfig.get_path("stdlib"), "EXTERNALLY-MANAGED")
sys.exit(0 if not in_venv and os.path.exists(marker) else 1)
PY
then
  if [ -z "${PIP_BREAK_SYSTEM_PACKAGES:-}" ]; then
    echo "scripts/test.sh: $(command -v python3) is the system's Python, managed by the OS;" \
         "pip will not install enduro's test dependencies into it." >&2
    echo "Create a virtual environment first, then run this script again:" >&2
    echo "  python3 -m venv .venv && . .venv/bin/activate && bash scripts/test.sh" >&2
    exit 2
  fi
fi

missing=()
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing+=(nginx-light)
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v nats-server >/dev/null 2>&1 || [ -x /usr/sbin/nats-server ] || missing+=(nats-server)
ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || missing+=(postgresql)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v hyperfine >/dev/null 2>&1 || missing+=(hyperfine)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
# The Ray cluster tests run in namespaces of their own: unshare and nsenter, and ip for loopback.
command -v nsenter >/dev/null 2>&1 || missing+=(util-linux)
command -v ip >/dev/null 2>&1 || missing+=(iproute2)
command -v ps >/dev/null 2>&1 || missing+=(procps)
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing OS packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

python3 -m pip install -q --disable-pip-version-check -e '.[test]'
python3 -m ruff check src tests benchmarks
python3 -m mypy
# Tests are independent (ports and directories per test), so they run in parallel: most of
# their time is spent waiting for runs of fixed length, so 5 workers keep a 2-core machine busy
# (3 left it half idle). The longest tests start first (tests/conftest.py).
# ENDURO_TEST_WORKERS=0 runs them in one process.
python3 -m pytest -n "${ENDURO_TEST_WORKERS:-5}" "$@"
