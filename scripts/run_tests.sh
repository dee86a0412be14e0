#!/usr/bin/env bash
# Run the suite against the patched torch of .venv (or of PYTHON=...), through
# pytest, so that the run ends with pytest's "N passed, M failed" summary.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${PYTHON:-$REPO/.venv/bin/python}"

case "${1:-}" in
  -h | --help)
    echo "Usage: [PYTHON=python3] scripts/run_tests.sh [PYTEST ARGS...]"
    echo "Runs test/inductor/test_custom_op_range.py (and benchmarks' smoke test)"
    echo "with pytest against the torch of PYTHON (default: .venv/bin/python)."
    exit 0 ;;
esac
[ -x "$PY" ] || command -v "$PY" >/dev/null 2>&1 ||
  { echo "run_tests.sh: error: no interpreter '$PY'; run scripts/apply_and_build.sh first" >&2; exit 3; }

cd "$REPO"
exec "$PY" -m pytest -q -p no:cacheprovider -rfEs "$@" test/inductor/test_custom_op_range.py
