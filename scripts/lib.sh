# shellcheck shell=bash
# Helpers shared by the scripts in scripts/. Source it after setting PROG (the name
# messages start with):  PROG=name.sh; . "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# Exit codes, the same in every script (each --help lists the ones it uses).
# shellcheck disable=SC2034  # (these and REPO are for the sourcing scripts)
EXIT_FAIL=1    # the work failed: a patch does not apply, a test failed, bad state
EXIT_USAGE=2   # bad command line
EXIT_TOOL=3    # a required tool or interpreter is missing
EXIT_VERSION=4 # torch (or the checkout) is not the pinned base

# shellcheck disable=SC2034
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

# die CODE MESSAGE...: the message on stderr, then exit CODE.
die() {
  local code="$1"
  shift
  echo "${PROG:-script}: error: $*" >&2
  exit "$code"
}

# info MESSAGE...: a progress line on stdout.
info() { echo "${PROG:-script}: $*"; }

# need_arg OPTION [VALUE...]: fail unless OPTION got a non-empty value.
need_arg() { [ $# -ge 2 ] && [ -n "$2" ] || die "$EXIT_USAGE" "$1 needs an argument (see --help)"; }

# require_tool NAME [WHY]: fail unless NAME is on PATH.
require_tool() {
  command -v "$1" >/dev/null 2>&1 || die "$EXIT_TOOL" "'$1' is required but not on PATH${2:+ ($2)}"
}

# require_free_space DIR GB WHAT: fail before starting WHAT unless DIR's filesystem
# has GB gigabytes free (pip would fail midway with "No space left on device").
require_free_space() {
  local dir="$1" need_gb="$2" what="$3" free_kb
  free_kb="$(df -Pk "$dir" 2>/dev/null | awk 'NR == 2 { print $4 }')"
  [ -n "$free_kb" ] || return 0 # no df here: let the install say
  [ "$free_kb" -ge $((need_gb * 1024 * 1024)) ] ||
    die "$EXIT_TOOL" "$what needs about $need_gb GB free on the filesystem of $dir;" \
      "$((free_kb / 1024 / 1024)) GB free"
}

# base_field BASE_FILE NAME: the value of the "NAME value" line of a BASE file.
base_field() { awk -v k="$2" '$1 == k { print $2; exit }' "$1"; }

# series_dirs: the series directories, one per supported base (patches/v<version>/,
# each with its series and BASE), newest base first: the first is the primary series.
series_dirs() {
  local dir
  for dir in "$REPO"/patches/v*/; do
    [ -f "$dir/BASE" ] && echo "${dir%/}"
  done | sort -r -V
}

# supported_bases: "2.15.0 (patches/v2.15.0), 2.11.0 (patches/v2.11.0)".
supported_bases() {
  local dir out=""
  while IFS= read -r dir; do
    out+="${out:+, }$(base_field "$dir/BASE" version) (patches/${dir##*/})"
  done < <(series_dirs)
  echo "$out"
}

# series_dir_for VERSION: the series directory whose base is torch VERSION (a local
# version suffix such as +cu130 is ignored), or nothing.
series_dir_for() {
  local version="${1%%+*}" dir
  while IFS= read -r dir; do
    if [ "$(base_field "$dir/BASE" version)" = "$version" ]; then
      echo "$dir"
      return
    fi
  done < <(series_dirs)
}

# torch_version_in TORCH_DIR: __version__ from TORCH_DIR/version.py (no import).
torch_version_in() {
  sed -n "s/^__version__ = '\(.*\)'\$/\1/p" "$1/version.py" 2>/dev/null
}

# series_dir_of_torch TORCH_DIR: the series for the torch at TORCH_DIR; fails with a
# message naming the supported bases when there is none.
series_dir_of_torch() {
  local version dir
  [ -f "$1/version.py" ] || die "$EXIT_VERSION" "$1 is not a torch package (no version.py)"
  version="$(torch_version_in "$1")"
  dir="$(series_dir_for "${version:-none}")"
  [ -n "$dir" ] ||
    die "$EXIT_VERSION" "torch at $1 is version '${version:-unknown}'; the series supports torch $(supported_bases)"
  echo "$dir"
}

# series_of PATCH_DIR: the patch file names of PATCH_DIR/series, one per line.
series_of() { grep -v -e '^[[:space:]]*$' -e '^#' "$1/series"; }

# created_paths DIR: the files under torch/ that the series in DIR creates (new
# files, not upstream ones: they have no sha256 in BASE), in series order.
created_paths() {
  local p
  series_of "$1" | while IFS= read -r p; do
    awk '/^diff --git a\// { path = substr($4, 3) } /^new file mode/ && path ~ /^torch\// { print path }' "$1/$p"
  done
}

# abs_command PY: PY as an absolute path when it names a file by a relative path
# (scripts cd elsewhere before running it); a bare command name stays as it is.
abs_command() {
  case "$1" in
    /*) echo "$1" ;;
    */*) echo "$(cd "$(dirname "$1")" && pwd)/$(basename "$1")" ;;
    *) echo "$1" ;;
  esac
}

# torch_dir_of PY: the torch package directory of interpreter PY, without importing
# torch (fast, and works on a torch that a bad patch left unimportable).
torch_dir_of() {
  local py="$1" dir
  command -v "$py" >/dev/null 2>&1 || [ -x "$py" ] || die "$EXIT_TOOL" "python interpreter '$py' not found"
  dir="$("$py" -c 'import importlib.util as u; s = u.find_spec("torch"); print(s.submodule_search_locations[0] if s else "")')" ||
    die "$EXIT_TOOL" "could not run '$py'"
  [ -n "$dir" ] || die "$EXIT_VERSION" "'$py' has no torch installed"
  echo "$dir"
}

# apply_test_part DIR PATCHFILE: git apply the test/ part of a patch inside DIR (a
# git repository of the series' test files as of the patches applied so far).
apply_test_part() {
  (cd "$1" && git apply --include='test/*' --whitespace=nowarn "$2")
}

# pytest_workers PY: set PYTEST_WORKERS to pytest-xdist's "-n N" where PY has xdist
# (requirements-test.txt; the GPU machine has none), else to nothing. Each worker
# gets one OpenMP thread: two workers' threads spinning against each other on two
# cores slow a kernel down many times over, which real benchmarks would see.
pytest_workers() {
  PYTEST_WORKERS=()
  if "$1" -c "import xdist" 2>/dev/null; then
    PYTEST_WORKERS=(-n "${TEST_JOBS:-2}")
    export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
  fi
}
