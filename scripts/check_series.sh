#!/usr/bin/env bash
# Check that every prefix of the patch series applies to the pristine base files
# and leaves an importable torch: the series is bisectable.
set -euo pipefail

PROG="check_series.sh"
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() {
  cat <<EOF
Usage: scripts/$PROG [--python PY] [--patches DIR] [--overlay DIR] [--tests [--from K]] [--run CMD]

For each prefix 0001..000k of DIR/series (default: the series for PY's torch,
patches/v<version>/), in order: apply it
with git apply to the pristine base files (the upstream files DIR/BASE lists,
sha256-checked), install the result into the torch of PY (default: .venv), and
import every module the series touches. With --tests, the test files the prefix
has created or changed so far (its test/ part, applied to an empty tree) then run
with pytest: every prefix passes its own tests (--from K: only from prefix K on,
the earlier ones still applied and imported). With --run, CMD then runs through
"bash -c" at every prefix (e.g. --run 'scripts/run_tests.sh -k TestValidation').
Prints one line per patch and stops at the first prefix that fails. The torch's
files are restored byte for byte at the end, whatever happens. (The torch's overlay
files, e.g. the tests' helper, are left as they are: --run on a patched torch.)

Exit codes: 0 every prefix passes, $EXIT_FAIL a prefix fails, $EXIT_USAGE usage,
$EXIT_TOOL missing tool.
EOF
}

PY="$REPO/.venv/bin/python"
PATCHES=""
OVERLAY="$REPO/torch_overlay"
RUN=""
TESTS=0
FROM=1
while [ $# -gt 0 ]; do
  case "$1" in
    -h | --help) usage; exit 0 ;;
    --python) need_arg "$@"; PY="$(abs_command "$2")"; shift ;;
    --patches) need_arg "$@"; PATCHES="$(cd "$2" && pwd)"; shift ;;
    --overlay) need_arg "$@"; OVERLAY="$(cd "$2" && pwd)"; shift ;;
    --run) need_arg "$@"; RUN="$2"; shift ;;
    --tests) TESTS=1 ;;
    --from) need_arg "$@"; FROM="$2"; shift ;;
    *) die "$EXIT_USAGE" "unknown argument '$1' (see --help)" ;;
  esac
  shift
done
case "$FROM" in
  '' | *[!0-9]*) die "$EXIT_USAGE" "--from takes a prefix number (1, 2, ...), got '$FROM'" ;;
esac
require_tool git
TORCH_DIR="$(torch_dir_of "$PY")"
[ -n "$PATCHES" ] || PATCHES="$(series_dir_of_torch "$TORCH_DIR")"
[ -f "$PATCHES/BASE" ] && [ -f "$PATCHES/series" ] || die "$EXIT_USAGE" "$PATCHES has no BASE or series"

ROOT="$(dirname "$TORCH_DIR")"
mapfile -t SERIES < <(series_of "$PATCHES")
mapfile -t PATHS < <(awk '$1 == "sha256" { print $3 }' "$PATCHES/BASE")
# Whole files the series adds to torch: absent at a prefix that has not created them.
mapfile -t CREATED < <(created_paths "$PATCHES")
# torch/_inductor/kernel/custom_op.py -> torch._inductor.kernel.custom_op
MODULES="$(printf '%s\n' "${PATHS[@]}" | sed -e 's|\.py$||' -e 's|/|.|g' | paste -sd, -)"

TMP="$(mktemp -d)"
# The torch's files as found, put back at exit (also on failure or Ctrl-C).
mkdir -p "$TMP/saved" "$TMP/pristine"
OVERLAY_FILES=()
[ ! -d "$OVERLAY" ] || mapfile -t OVERLAY_FILES < <(cd "$OVERLAY" && find . -type f ! -name '*.pyc' ! -path '*/__pycache__/*' | sed 's|^\./||')
for rel in "${PATHS[@]}" torch/version.py "${OVERLAY_FILES[@]}" "${CREATED[@]}"; do
  [ -f "$ROOT/$rel" ] || continue # an overlay or series-created file of an unpatched torch
  mkdir -p "$TMP/saved/$(dirname "$rel")"
  cp "$ROOT/$rel" "$TMP/saved/$rel"
done
restore() {
  local rel
  for rel in "${PATHS[@]}"; do cp "$TMP/saved/$rel" "$ROOT/$rel"; done
  for rel in "${CREATED[@]}"; do
    if [ -f "$TMP/saved/$rel" ]; then cp "$TMP/saved/$rel" "$ROOT/$rel"; else rm -f "$ROOT/$rel"; fi
  done
  rm -rf "$TMP"
}
trap restore EXIT

# Pristine files: the torch's own, reverted (and sha256-checked against BASE) by
# apply_and_build.sh in a scratch copy, whether the torch is patched or not.
cp -r "$TMP/saved/torch" "$TMP/pristine/"
"$REPO/scripts/apply_and_build.sh" --torch-dir "$TMP/pristine/torch" --patches "$PATCHES" --overlay "$OVERLAY" --revert >/dev/null ||
  die "$EXIT_FAIL" "the torch of $PY is neither pristine $(base_field "$PATCHES/BASE" version) nor patched with this series"
# Its own repository, so that git apply never resolves paths against an enclosing one.
git -C "$TMP/pristine" init --quiet
[ "$TESTS" = 0 ] || pytest_workers "$PY"
# The series' test files, as of each prefix.
mkdir -p "$TMP/tests"
git -C "$TMP/tests" init --quiet
n=0
for p in "${SERIES[@]}"; do
  n=$((n + 1))
  if ! (cd "$TMP/pristine" && git apply --include='torch/*' --whitespace=nowarn "$PATCHES/$p") 2>"$TMP/err"; then
    printf '%-70s FAIL (does not apply)\n' "$p"
    die "$EXIT_FAIL" "prefix $n: $p does not apply: $(head -n 3 "$TMP/err" | tr '\n' ' ')"
  fi
  for rel in "${PATHS[@]}"; do cp "$TMP/pristine/$rel" "$ROOT/$rel"; done
  for rel in "${CREATED[@]}"; do
    if [ -f "$TMP/pristine/$rel" ]; then
      mkdir -p "$ROOT/$(dirname "$rel")"
      cp "$TMP/pristine/$rel" "$ROOT/$rel"
    else
      rm -f "$ROOT/$rel"
    fi
  done
  if ! "$PY" -c "import $MODULES" 2>"$TMP/err"; then
    printf '%-70s FAIL (import)\n' "$p"
    die "$EXIT_FAIL" "prefix $n: import failed: $(tail -n 3 "$TMP/err" | tr '\n' ' ')"
  fi
  apply_test_part "$TMP/tests" "$PATCHES/$p"
  summary=""
  if [ "$TESTS" = 1 ] && [ "$n" -ge "$FROM" ]; then
    test_files=()
    [ ! -d "$TMP/tests/test" ] || mapfile -t test_files < <(cd "$TMP/tests" && find test -name 'test_*.py' | LC_ALL=C sort)
    if [ "${#test_files[@]}" -gt 0 ]; then
      if ! (cd "$TMP/tests" && "$PY" -m pytest -q -p no:cacheprovider -rfE "${PYTEST_WORKERS[@]}" "${test_files[@]}") >"$TMP/tests.log" 2>&1; then
        printf '%-70s FAIL (tests)\n' "$p"
        grep -E '^(FAILED|ERROR) ' "$TMP/tests.log" >&2 || tail -n 20 "$TMP/tests.log" >&2
        die "$EXIT_FAIL" "prefix $n: its tests fail: $(tail -n 1 "$TMP/tests.log")"
      fi
      summary=" ($(tail -n 1 "$TMP/tests.log" | tr -d '=' | sed -e 's/^ *//' -e 's/ *$//'))"
    fi
  fi
  if [ -n "$RUN" ] && ! bash -c "$RUN" >"$TMP/run.log" 2>&1; then
    printf '%-70s FAIL (--run)\n' "$p"
    tail -n 20 "$TMP/run.log" >&2
    die "$EXIT_FAIL" "prefix $n: '$RUN' failed"
  fi
  printf '%-70s ok%s\n' "$p" "$summary"
done
[ "$TESTS" = 1 ] && what=", and pass their tests" || what=""
info "${PATCHES##*/}: all ${#SERIES[@]} prefixes apply and import$what${RUN:+, and pass --run}"
