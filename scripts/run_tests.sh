#!/usr/bin/env bash
# Run the suite against the patched torch of .venv (or of PYTHON=...), through
# pytest, so that the run ends with pytest's "N passed, M failed" summary.
set -euo pipefail

PROG="run_tests.sh"
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
PY="${PYTHON:-$REPO/.venv/bin/python}"

case "${1:-}" in
  -h | --help)
    echo "Usage: [PYTHON=python3] scripts/run_tests.sh [PYTEST ARGS...]"
    echo "Runs test/inductor/test_custom_op_range.py with pytest against the torch of"
    echo "PYTHON (default: .venv/bin/python). (.ci/run also smoke-tests the benchmarks.)"
    exit 0 ;;
esac
[ -x "$PY" ] || command -v "$PY" >/dev/null 2>&1 ||
  die "$EXIT_TOOL" "no interpreter '$PY'; run scripts/apply_and_build.sh first"

cd "$REPO"
exec "$PY" -m pytest -q -p no:cacheprovider -rfEs "$@" test/inductor/test_custom_op_range.py
