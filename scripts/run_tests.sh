#!/usr/bin/env bash
# Run every test against the patched torch of .venv (or of PYTHONPATH=...), through
# pytest, so that the run ends with pytest's "N passed, M failed" summary: the test
# files the series' patches create (materialized from patches/ into build/), and
# this project's own suite (emitted kernels, tooling).
set -euo pipefail

PROG="run_tests.sh"
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
PY="${PYTHON:-$REPO/.venv/bin/python}"
SERIES_TESTS="$REPO/build/series-tests"

case "${1:-}" in
  -h | --help)
    echo "Usage: [PYTHON=python3] scripts/run_tests.sh [PYTEST ARGS...]"
    echo "Writes the test files of patches/series (their test/ part, applied in order)"
    echo "to build/series-tests/, then runs them, test/inductor/test_custom_op_range.py"
    echo "and test/scripts/ with pytest against the torch of PYTHON (default:"
    echo ".venv/bin/python), on TEST_JOBS (default 2) workers when pytest-xdist is installed."
    exit 0 ;;
esac
[ -x "$PY" ] || command -v "$PY" >/dev/null 2>&1 ||
  die "$EXIT_TOOL" "no interpreter '$PY'; run scripts/apply_and_build.sh first"
require_tool git

# The series' test files, as the last patch leaves them.
rm -rf "$SERIES_TESTS"
mkdir -p "$SERIES_TESTS"
git -C "$SERIES_TESTS" init --quiet
while IFS= read -r p; do
  apply_test_part "$SERIES_TESTS" "$REPO/patches/$p" ||
    die "$EXIT_FAIL" "the test files of $p do not apply"
done < <(series_of "$REPO/patches")
mapfile -t series_tests < <(cd "$SERIES_TESTS" && find test -name 'test_*.py' | LC_ALL=C sort | sed "s|^|$SERIES_TESTS/|")

pytest_workers "$PY"

cd "$REPO"
exec "$PY" -m pytest -q -p no:cacheprovider -rfEs "${PYTEST_WORKERS[@]}" "$@" \
  "${series_tests[@]}" test/inductor/test_custom_op_range.py test/scripts
