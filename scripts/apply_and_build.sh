#!/usr/bin/env bash
# Apply the custom-op range-dispatch patch series (patches/v<version>/ + torch_overlay/)
# to the PyTorch release it was made for: an installed wheel (default: a fresh .venv
# with the primary series' torch) or a source checkout. One series per supported
# base; the one that matches the target's torch is picked.
set -euo pipefail

PROG="apply_and_build.sh"
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# A CUDA build of torch with its CUDA libraries and triton: about 6 GB installed,
# plus about 4 GB of wheels while pip installs them (--no-cache-dir: nothing kept).
TORCH_INSTALL_GB=10

usage() {
  cat <<EOF
Usage: scripts/$PROG [MODE] [OPTIONS]

Applies the patch series for the target's PyTorch (and the whole files in
torch_overlay/). Supported: $(supported_bases). The first is the primary series.

Target (default: create .venv, pip install the primary base's torch + test deps,
patch its torch):
  --python PY       patch the torch of an existing interpreter (no venv, no pip);
                    the series is the one for PY's torch version
  --torch-dir DIR   patch the torch package directory DIR directly (same rule)
  --source DIR      apply to a PyTorch git checkout at a supported base commit
                    (git am)

Mode (default: apply, then run the demo):
  --check           dry run: say whether the series would apply, and why not
  --revert          restore the original upstream files (checked against BASE)
  --build           with --source: build it (pip install -e . --no-build-isolation;
                    honours MAX_JOBS, USE_CUDA=auto|0|1)
  --dry-run         with --build: print the build command instead of running it

Options:
  --base VERSION    in the default mode: the base to install and patch (default:
                    the primary); its venv defaults to .venv-VERSION
  --venv DIR        venv to create/use in the default mode (default: .venv for the
                    primary base)
  --patches DIR     series directory (default: the one for the target's torch)
  --overlay DIR     overlay directory (default: torch_overlay/)
  --no-demo         do not run scripts/demo.py after applying
  -h, --help        this text

Exit codes: 0 ok (also: already applied / nothing to revert), $EXIT_FAIL does not
apply or unknown file state, $EXIT_USAGE usage, $EXIT_TOOL missing tool (or no
room to install torch: about $TORCH_INSTALL_GB GB free needed),
$EXIT_VERSION torch or checkout is no supported base (or not the --patches one).
EOF
}

# ---------------------------------------------------------------- arguments
MODE=apply
TARGET=venv
PY=""
TORCH_DIR=""
SOURCE_DIR=""
BUILD=0
DRY_RUN=0
DEMO=1
VENV=""
BASE=""
PATCHES=""
OVERLAY="$REPO/torch_overlay"

while [ $# -gt 0 ]; do
  case "$1" in
    -h | --help) usage; exit 0 ;;
    --check) MODE=check ;;
    --revert) MODE=revert ;;
    --build) BUILD=1 ;;
    --dry-run) DRY_RUN=1 ;;
    --no-demo) DEMO=0 ;;
    --python) need_arg "$@"; TARGET=python; PY="$2"; shift ;;
    --torch-dir) need_arg "$@"; TARGET=torchdir; TORCH_DIR="$2"; shift ;;
    --source) need_arg "$@"; TARGET=source; SOURCE_DIR="$2"; shift ;;
    --venv) need_arg "$@"; VENV="$2"; shift ;;
    --base) need_arg "$@"; BASE="$2"; shift ;;
    --patches) need_arg "$@"; PATCHES="$2"; shift ;;
    --overlay) need_arg "$@"; OVERLAY="$2"; shift ;;
    *) die "$EXIT_USAGE" "unknown argument '$1' (see --help)" ;;
  esac
  shift
done

if [ "$BUILD" = 1 ] && [ "$TARGET" != source ]; then
  die "$EXIT_USAGE" "--build needs --source DIR"
fi
if [ "$DRY_RUN" = 1 ] && [ "$BUILD" = 0 ]; then
  die "$EXIT_USAGE" "--dry-run only goes with --build"
fi
if [ -n "$BASE" ] && [ "$TARGET" != venv ]; then
  die "$EXIT_USAGE" "--base is for the default (venv) mode; --python, --torch-dir and --source use the series of their torch"
fi

# ---------------------------------------------------------------- which series
# series_dir_for_checkout SRC: the series whose base commit is SRC's HEAD or one of
# its ancestors (a checkout with the series applied), newest base first.
series_dir_for_checkout() {
  local src="$1" dir commit
  while IFS= read -r dir; do
    commit="$(base_field "$dir/BASE" commit)"
    if git -C "$src" merge-base --is-ancestor "$commit" HEAD 2>/dev/null; then
      echo "$dir"
      return
    fi
  done < <(series_dirs)
}

# The torch package of --python, found once (it starts the interpreter).
[ "$TARGET" != python ] || TORCH_DIR="$(torch_dir_of "$PY")"

if [ -z "$PATCHES" ]; then
  [ -n "$(series_dirs)" ] || die "$EXIT_FAIL" "no series under $REPO/patches (patches/v<version>/ with a BASE)"
  case "$TARGET" in
    venv)
      if [ -z "$BASE" ]; then
        PATCHES="$(series_dirs | head -n 1)"
      else
        PATCHES="$(series_dir_for "$BASE")"
        [ -n "$PATCHES" ] || die "$EXIT_USAGE" "--base $BASE: no series for it; supported: $(supported_bases)"
      fi ;;
    python | torchdir) PATCHES="$(series_dir_of_torch "$TORCH_DIR")" ;;
    source)
      [ -d "$SOURCE_DIR" ] || die "$EXIT_USAGE" "--source $SOURCE_DIR is not a directory"
      PATCHES="$(series_dir_for_checkout "$SOURCE_DIR")"
      [ -n "$PATCHES" ] || die "$EXIT_VERSION" "$SOURCE_DIR is at $(git -C "$SOURCE_DIR" rev-parse HEAD 2>/dev/null || echo '?'), which is no supported base: $(series_dirs | while IFS= read -r d; do printf '%s (commit %s) ' "$(base_field "$d/BASE" version)" "$(base_field "$d/BASE" commit)"; done)" ;;
  esac
fi
# The primary base's venv is .venv, another base's .venv-VERSION.
[ -n "$VENV" ] || VENV="$REPO/.venv${BASE:+-$BASE}"

# ---------------------------------------------------------------- BASE and series
BASE_FILE="$PATCHES/BASE"
[ -f "$BASE_FILE" ] || die "$EXIT_FAIL" "missing $BASE_FILE"
[ -f "$PATCHES/series" ] || die "$EXIT_FAIL" "missing $PATCHES/series"

BASE_VERSION="$(base_field "$BASE_FILE" version)"
BASE_COMMIT="$(base_field "$BASE_FILE" commit)"
[ -n "$BASE_VERSION" ] && [ -n "$BASE_COMMIT" ] || die "$EXIT_FAIL" "$BASE_FILE lacks a version or commit line"

# Upstream files the series touches, with their pristine sha256.
mapfile -t BASE_PATHS < <(awk '$1 == "sha256" { print $3 }' "$BASE_FILE")
mapfile -t BASE_SHAS < <(awk '$1 == "sha256" { print $2 }' "$BASE_FILE")
[ "${#BASE_PATHS[@]}" -gt 0 ] || die "$EXIT_FAIL" "$BASE_FILE lists no files"

mapfile -t SERIES < <(series_of "$PATCHES")
# Whole files the patches add to the torch tree (a test utility): installed,
# verified and reverted with the upstream files they go with.
mapfile -t CREATED_PATHS < <(created_paths "$PATCHES")
for p in "${SERIES[@]}"; do
  [ -f "$PATCHES/$p" ] || die "$EXIT_FAIL" "$PATCHES/series lists '$p' but $PATCHES/$p does not exist"
done

OVERLAY_FILES=()
if [ -d "$OVERLAY" ]; then
  mapfile -t OVERLAY_FILES < <(cd "$OVERLAY" && find . -type f ! -name '*.pyc' ! -path '*/__pycache__/*' | sed 's|^\./||' | LC_ALL=C sort)
fi

# ---------------------------------------------------------------- helpers
require_tool sha256sum "coreutils"
require_tool git "the series is applied with git apply / git am"

# git_apply DIR PATCHFILE... [-R]: git apply the torch/ part of the patches, in order,
# inside DIR (their test/ files are not part of an installed torch: run_tests.sh
# materializes them). All or nothing: git writes no file unless every patch applies.
# (The series is applied to a staging copy rather than checked in place with --check:
# git apply --check does not chain patches that touch the same file.)
git_apply() {
  local dir="$1"
  shift
  # The ceiling keeps git from treating an enclosing repository as the target.
  (cd "$dir" && GIT_CEILING_DIRECTORIES="$(dirname "$dir")" git apply --include='torch/*' --whitespace=nowarn "$@")
}

sha_of() { sha256sum "$1" | awk '{ print $1 }'; }

# Staging trees live under one temp root, so that those made in $(...) subshells
# are cleaned up too.
TMP_ROOT="$(mktemp -d)"
trap 'rm -rf "$TMP_ROOT"' EXIT
new_tmp() { mktemp -d -p "$TMP_ROOT"; }

# copy_touched FROM TO: copy the BASE files from tree FROM into tree TO.
copy_touched() {
  local from="$1" to="$2" rel
  for rel in "${BASE_PATHS[@]}"; do
    [ -f "$from/$rel" ] || die "$EXIT_FAIL" "$from/$rel does not exist (listed in BASE)"
    mkdir -p "$to/$(dirname "$rel")"
    cp "$from/$rel" "$to/$rel"
  done
  for rel in "${CREATED_PATHS[@]}"; do
    [ -f "$from/$rel" ] || continue # a pristine tree has none
    mkdir -p "$to/$(dirname "$rel")"
    cp "$from/$rel" "$to/$rel"
  done
}

# first_base_mismatch ROOT: print the first BASE file whose sha differs from BASE.
first_base_mismatch() {
  local root="$1" i
  for i in "${!BASE_PATHS[@]}"; do
    if [ ! -f "$root/${BASE_PATHS[$i]}" ] || [ "$(sha_of "$root/${BASE_PATHS[$i]}")" != "${BASE_SHAS[$i]}" ]; then
      echo "${BASE_PATHS[$i]}"
      return
    fi
  done
}

# stage_forward ROOT: a temp tree holding ROOT's touched files with the series applied
# and the overlay copied in. Prints its path; fails naming the patch that does not apply.
stage_forward() {
  local root="$1" stage p rel
  stage="$(new_tmp)"
  copy_touched "$root" "$stage"
  # One patch at a time, so that the error names the patch that does not apply.
  for p in "${SERIES[@]}"; do
    git_apply "$stage" "$PATCHES/$p" 2>"$TMP_ROOT/apply.err" ||
      die "$EXIT_FAIL" "patch $p does not apply: $(head -n 3 "$TMP_ROOT/apply.err" | tr '\n' ' ')"
  done
  for rel in "${OVERLAY_FILES[@]}"; do
    mkdir -p "$stage/$(dirname "$rel")"
    cp "$OVERLAY/$rel" "$stage/$rel"
  done
  echo "$stage"
}

# stage_reverse ROOT: a temp tree holding ROOT's touched files with the series reversed.
# Prints its path, or nothing if the series does not reverse cleanly.
stage_reverse() {
  local root="$1" stage i reversed=()
  stage="$(new_tmp)"
  copy_touched "$root" "$stage"
  for ((i = ${#SERIES[@]} - 1; i >= 0; i--)); do
    reversed+=("$PATCHES/${SERIES[$i]}")
  done
  git_apply "$stage" -R "${reversed[@]}" 2>/dev/null || return 0
  echo "$stage"
}

# same_files A B REL...: whether each REL is byte-identical in trees A and B.
same_files() {
  local a="$1" b="$2" rel
  shift 2
  for rel in "$@"; do
    cmp -s "$a/$rel" "$b/$rel" || return 1
  done
}

# tree_state ROOT: "pristine", "applied", or "mismatch FILE" (neither state).
tree_state() {
  local root="$1" bad rel reversed forward
  bad="$(first_base_mismatch "$root")"
  if [ -z "$bad" ]; then
    for rel in "${OVERLAY_FILES[@]}" "${CREATED_PATHS[@]}"; do
      [ ! -e "$root/$rel" ] || { echo "mismatch $rel"; return; }
    done
    echo pristine
    return
  fi
  # Applied exactly when reversing gives the base and re-applying gives the tree back.
  reversed="$(stage_reverse "$root")"
  if [ -z "$reversed" ] || [ -n "$(first_base_mismatch "$reversed")" ]; then
    echo "mismatch $bad"
    return
  fi
  forward="$(stage_forward "$reversed")"
  for rel in "${BASE_PATHS[@]}" "${CREATED_PATHS[@]}" "${OVERLAY_FILES[@]}"; do
    if [ ! -f "$root/$rel" ] || ! cmp -s "$forward/$rel" "$root/$rel"; then
      echo "mismatch $rel"
      return
    fi
  done
  echo applied
}

mismatch_error() {
  die "$EXIT_FAIL" "$1/$2 matches neither the base ($BASE_VERSION) nor the patched state; reinstall torch==$BASE_VERSION or revert your local edits"
}

# install_tree STAGE ROOT REL...: copy files from STAGE into ROOT, each by an atomic rename.
install_tree() {
  local stage="$1" root="$2" rel
  shift 2
  for rel in "$@"; do
    mkdir -p "$root/$(dirname "$rel")"
    cp "$stage/$rel" "$root/$rel.apply-tmp"
    mv -f "$root/$rel.apply-tmp" "$root/$rel"
  done
}

# ---------------------------------------------------------------- wheel target
# check_torch_version TORCH_DIR: the installed torch must be the pinned base.
check_torch_version() {
  local vfile="$1/version.py" version commit
  [ -f "$vfile" ] || die "$EXIT_VERSION" "$1 is not a torch package (no version.py)"
  version="$(torch_version_in "$1")"
  commit="$(sed -n "s/^git_version = '\(.*\)'\$/\1/p" "$vfile")"
  case "$version" in
    "$BASE_VERSION" | "$BASE_VERSION"+*) ;;
    *) die "$EXIT_VERSION" "torch at $1 is version '${version:-unknown}', the series needs $BASE_VERSION" ;;
  esac
  [ "$commit" = "$BASE_COMMIT" ] ||
    die "$EXIT_VERSION" "torch at $1 was built from commit '${commit:-unknown}', the series needs $BASE_COMMIT"
}

make_venv() {
  require_tool python3 "needed to create $VENV"
  if [ ! -x "$VENV/bin/python" ]; then
    info "creating $VENV"
    python3 -m venv "$VENV" || die "$EXIT_TOOL" "python3 -m venv failed (is the venv module installed?)"
  fi
  PY="$VENV/bin/python"
  local have
  have="$("$PY" -c 'import importlib.metadata as m
try: print(m.version("torch"))
except m.PackageNotFoundError: print("")')"
  if [ -z "$have" ]; then
    require_free_space "$VENV" "$TORCH_INSTALL_GB" "pip install torch==$BASE_VERSION into $VENV"
    info "pip install torch==$BASE_VERSION and the test dependencies (takes a few minutes)"
    # The series needs exactly this torch. A site-wide pip constraint that caps
    # torch below it (some machines pin an older release) would make the pinned
    # install impossible, so the exact pin stands in for constraints here. No
    # wheel cache: it would keep another 4 GB per base on disk.
    PIP_CONSTRAINT=/dev/null "$PY" -m pip install --quiet --disable-pip-version-check \
      --no-cache-dir "torch==$BASE_VERSION" -r "$REPO/requirements-test.txt" ||
      die "$EXIT_TOOL" "pip install failed"
  else
    "$PY" -m pip install --quiet --disable-pip-version-check -r "$REPO/requirements-test.txt" ||
      die "$EXIT_TOOL" "pip install of the test dependencies failed"
  fi
}

wheel_main() {
  local torch_dir root state stage
  case "$TARGET" in
    venv) if [ "$MODE" = apply ]; then make_venv; else PY="$VENV/bin/python"; fi
          torch_dir="$(torch_dir_of "$PY")" ;;
    python) torch_dir="$TORCH_DIR" ;;
    torchdir) [ -d "$TORCH_DIR" ] || die "$EXIT_USAGE" "--torch-dir $TORCH_DIR is not a directory"
              torch_dir="$(cd "$TORCH_DIR" && pwd)" ;;
  esac
  check_torch_version "$torch_dir"
  root="$(dirname "$torch_dir")"
  state="$(tree_state "$root")"
  case "$MODE:$state" in
    *:mismatch\ *) mismatch_error "$root" "${state#mismatch }" ;;
    check:pristine)
      stage_forward "$root" >/dev/null
      info "the series would apply cleanly to $torch_dir (${#SERIES[@]} patches, ${#OVERLAY_FILES[@]} overlay files)" ;;
    check:applied) info "the series is already applied to $torch_dir" ;;
    apply:applied) info "the series is already applied to $torch_dir; nothing changed" ;;
    apply:pristine)
      stage="$(stage_forward "$root")"
      install_tree "$stage" "$root" "${BASE_PATHS[@]}" "${CREATED_PATHS[@]}" "${OVERLAY_FILES[@]}"
      [ "$(tree_state "$root")" = applied ] || die "$EXIT_FAIL" "applied, but the result does not verify"
      info "applied to $torch_dir:"
      printf '  patch   %s\n' "${SERIES[@]}"
      [ "${#OVERLAY_FILES[@]}" -eq 0 ] || printf '  overlay %s\n' "${OVERLAY_FILES[@]}" ;;
    revert:pristine) info "$torch_dir is already pristine; nothing to revert" ;;
    revert:applied)
      stage="$(stage_reverse "$root")"
      install_tree "$stage" "$root" "${BASE_PATHS[@]}"
      local rel
      for rel in "${OVERLAY_FILES[@]}" "${CREATED_PATHS[@]}"; do rm -f "$root/$rel"; done
      [ -z "$(first_base_mismatch "$root")" ] || die "$EXIT_FAIL" "reverted, but a file does not match BASE"
      info "reverted $torch_dir; ${#BASE_PATHS[@]} files match the sha256 in BASE" ;;
  esac
  if [ "$MODE" = apply ] && [ "$DEMO" = 1 ]; then
    [ -n "$PY" ] || { info "no interpreter for --torch-dir; skipping the demo"; return; }
    info "demo: compiling a range-dispatched custom op"
    "$PY" "$REPO/scripts/demo.py"
  fi
}

# ---------------------------------------------------------------- source target
GIT_ID=(-c user.name="custom-op-range series" -c user.email="custom-op-range@invalid")

# patch_subject FILE: the commit subject git am --keep-non-patch gives FILE.
patch_subject() {
  git mailinfo -b /dev/null /dev/null <"$1" | sed -n 's/^Subject: //p'
}

source_main() {
  [ -d "$SOURCE_DIR" ] || die "$EXIT_USAGE" "--source $SOURCE_DIR is not a directory"
  local src head subjects applied=0 p n
  src="$(cd "$SOURCE_DIR" && pwd)"
  git -C "$src" rev-parse --is-inside-work-tree >/dev/null 2>&1 || die "$EXIT_USAGE" "$src is not a git checkout"
  head="$(git -C "$src" rev-parse HEAD)"
  n="${#SERIES[@]}"
  [ -z "${OVERLAY_FILES[*]}" ] || n=$((n + 1))
  # Already applied: HEAD~n is the base and the last n subjects are ours.
  if [ "$head" != "$BASE_COMMIT" ] && [ "$(git -C "$src" rev-parse -q --verify "HEAD~$n" 2>/dev/null)" = "$BASE_COMMIT" ]; then
    # (No `| head` here: under pipefail the writer's SIGPIPE would abort the script.)
    subjects="$(git -C "$src" log -n "${#SERIES[@]}" --format=%s HEAD)"
    local expected=""
    for ((p = ${#SERIES[@]} - 1; p >= 0; p--)); do
      expected+="$(patch_subject "$PATCHES/${SERIES[$p]}")"$'\n'
    done
    [ "$subjects"$'\n' = "$expected" ] && applied=1
  fi
  if [ -n "$(git -C "$src" status --porcelain --untracked-files=no)" ]; then
    die "$EXIT_FAIL" "$src has uncommitted changes; commit or stash them first"
  fi
  if [ "$applied" = 1 ]; then
    info "the series is already applied to $src (HEAD~$n is the base); nothing changed"
  elif [ "$head" != "$BASE_COMMIT" ]; then
    die "$EXIT_VERSION" "$src is at $head, the series needs the base commit $BASE_COMMIT (git checkout $BASE_COMMIT)"
  else
    local bad
    bad="$(first_base_mismatch "$src")"
    [ -z "$bad" ] || mismatch_error "$src" "$bad"
    case "$MODE" in
      revert) info "$src is at the base; nothing to revert" ;;
      check)
        local stage
        stage="$(stage_forward "$src")"
        info "the series would apply cleanly to $src (${#SERIES[@]} patches, ${#OVERLAY_FILES[@]} overlay files)" ;;
      apply) source_apply "$src" ;;
    esac
  fi
  if [ "$MODE" = revert ] && [ "$applied" = 1 ]; then
    git -C "$src" reset --quiet --hard "$BASE_COMMIT"
    info "reset $src to the base commit $BASE_COMMIT"
  fi
  if [ "$BUILD" = 1 ] && [ "$MODE" = apply ]; then
    source_build "$src"
  fi
}

source_apply() {
  local src="$1" rel p
  if [ "${#OVERLAY_FILES[@]}" -gt 0 ]; then
    for rel in "${OVERLAY_FILES[@]}"; do
      mkdir -p "$src/$(dirname "$rel")"
      cp "$OVERLAY/$rel" "$src/$rel"
      git -C "$src" add -- "$rel"
    done
    git -C "$src" "${GIT_ID[@]}" commit --quiet -m "Add torch_overlay files of the custom-op range series"
  fi
  local abs=()
  for p in "${SERIES[@]}"; do abs+=("$(cd "$PATCHES" && pwd)/$p"); done
  if ! git -C "$src" "${GIT_ID[@]}" am --quiet --keep-non-patch "${abs[@]}" 2>"$TMP_ROOT/am.err"; then
    git -C "$src" am --abort >/dev/null 2>&1 || true
    git -C "$src" reset --quiet --hard "$BASE_COMMIT"
    die "$EXIT_FAIL" "git am failed, $src reset to the base: $(head -n 3 "$TMP_ROOT/am.err" | tr '\n' ' ')"
  fi
  info "applied to $src with git am:"
  git -C "$src" log --format='  %h %s' "$BASE_COMMIT..HEAD"
}

source_build() {
  local src="$1" use_cuda="${USE_CUDA:-auto}" jobs="${MAX_JOBS:-}"
  if [ "$use_cuda" = auto ]; then
    if command -v nvcc >/dev/null 2>&1; then use_cuda=1; else use_cuda=0; fi
  fi
  [ -n "$jobs" ] || jobs="$(nproc)"
  local py="${PY:-python3}"
  local cmd=(env "USE_CUDA=$use_cuda" "MAX_JOBS=$jobs" "$py" -m pip install -e . -v --no-build-isolation)
  if [ "$DRY_RUN" = 1 ]; then
    info "would run in $src: ${cmd[*]}"
    return
  fi
  require_tool cmake "see BUILD.md"
  require_tool ninja "see BUILD.md"
  require_tool c++ "a C++17 compiler; see BUILD.md"
  info "building $src: ${cmd[*]}"
  (cd "$src" && "${cmd[@]}")
}

if [ "$TARGET" = source ]; then
  source_main
else
  wheel_main
fi
