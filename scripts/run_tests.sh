#!/usr/bin/env bash
# Run every test against the patched torch of .venv (or of PYTHON=...), through
# pytest, so that the run ends with pytest's "N passed, M failed" summary: the test
# files the series' patches create (materialized from the series for that torch,
# patches/v<version>/, into build/), and this project's own suite (emitted kernels,
# tooling). The same suite runs on every supported base.
set -euo pipefail

PROG="run_tests.sh"
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
PY="$(abs_command "${PYTHON:-$REPO/.venv/bin/python}")"
SERIES_TESTS="$REPO/build/series-tests"

case "${1:-}" in
  -h | --help)
    echo "Usage: [PYTHON=python3] scripts/run_tests.sh [PYTEST ARGS...]"
    echo "Writes the test files of the series for PYTHON's torch (patches/v<version>/:"
    echo "their test/ part, applied in order) to build/series-tests/, then runs them,"
    echo "test/inductor/test_custom_op_range.py and test/scripts/ with pytest against the"
    echo "torch of PYTHON (default: .venv/bin/python, the primary base), on TEST_JOBS"
    echo "(default 2) workers when pytest-xdist is installed. For the 2.11.0 backport:"
    echo "PYTHON=.venv-2.11.0/bin/python scripts/run_tests.sh"
    exit 0 ;;
esac
[ -x "$PY" ] || command -v "$PY" >/dev/null 2>&1 ||
  die "$EXIT_TOOL" "no interpreter '$PY'; run scripts/apply_and_build.sh first"
require_tool git
TORCH_DIR="$(torch_dir_of "$PY")"
PATCHES="$(series_dir_of_torch "$TORCH_DIR")"
info "torch $(torch_version_in "$TORCH_DIR") of $PY: the series in patches/${PATCHES##*/}"

# The series' test files, as the last patch leaves them.
rm -rf "$SERIES_TESTS"
mkdir -p "$SERIES_TESTS"
git -C "$SERIES_TESTS" init --quiet
while IFS= read -r p; do
  apply_test_part "$SERIES_TESTS" "$PATCHES/$p" ||
    die "$EXIT_FAIL" "the test files of $p do not apply"
done < <(series_of "$PATCHES")
mapfile -t series_tests < <(cd "$SERIES_TESTS" && find test -name 'test_*.py' | LC_ALL=C sort | sed "s|^|$SERIES_TESTS/|")

pytest_workers "$PY"

cd "$REPO"
exec "$PY" -m pytest -q -p no:cacheprovider -rfEs "${PYTEST_WORKERS[@]}" "$@" \
  "${series_tests[@]}" test/inductor/test_custom_op_range.py test/scripts
