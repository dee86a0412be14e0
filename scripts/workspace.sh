#!/usr/bin/env bash
# Edit the patch series as git commits: materialize a workspace repo of the upstream
# files the series touches (first commit = pristine base, then one commit per patch),
# and export it back to patches/ with git format-patch. Nobody edits hunks by hand.
set -euo pipefail

PROG="workspace.sh"
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
PATCHES="$REPO/patches"
WS="$REPO/.workspace"
PY="$REPO/.venv/bin/python"

usage() {
  cat <<EOF
Usage: scripts/$PROG COMMAND [OPTIONS]

Commands:
  init [--with PATH]...   create the workspace (default .workspace/): a git repo whose
                          first commit (tag 'base') holds the pristine upstream files in
                          patches/BASE (plus each --with PATH, a path like
                          torch/_inductor/graph.py that a new patch will touch), then
                          one commit per patch of patches/series (git am)
  export                  rewrite patches/*.patch, patches/series and the sha256 list of
                          patches/BASE from the workspace commits base..HEAD
  install                 export, then re-apply the series to .venv's torch
                          (revert + apply, no demo): the edit-test loop

Options:
  --workspace DIR   workspace location (default: .workspace)
  --python PY       interpreter whose torch gives the pristine files (default: .venv)
  -h, --help        this text

Exit codes: 0 ok, 1 failure, 2 usage, 3 missing tool.
EOF
}

[ $# -gt 0 ] || { usage >&2; exit 2; }
CMD="$1"
shift
WITH=()
while [ $# -gt 0 ]; do
  case "$1" in
    -h | --help) usage; exit 0 ;;
    --with) need_arg "$@"; WITH+=("$2"); shift ;;
    --workspace) need_arg "$@"; WS="$2"; shift ;;
    --python) need_arg "$@"; PY="$2"; shift ;;
    *) die "$EXIT_USAGE" "unknown argument '$1' (see --help)" ;;
  esac
  shift
done
case "$CMD" in -h | --help) usage; exit 0 ;; esac
require_tool git

GIT_ID=(-c user.name="custom-op-range series" -c user.email="custom-op-range@invalid")

cmd_init() {
  [ ! -e "$WS" ] || die "$EXIT_FAIL" "$WS already exists; remove it first (export what you committed there)"
  local torch_dir root rel
  torch_dir="$(torch_dir_of "$PY")"
  root="$(dirname "$torch_dir")"
  mapfile -t paths < <(awk '$1 == "sha256" { print $3 }' "$PATCHES/BASE")
  paths+=("${WITH[@]}")

  # Pristine files: the series is reverted in a scratch copy when the torch is patched.
  local scratch
  scratch="$(mktemp -d)"
  trap 'rm -rf "$scratch"' RETURN
  local overlay=()
  [ ! -d "$REPO/torch_overlay" ] || mapfile -t overlay < <(cd "$REPO/torch_overlay" && find . -type f | sed 's|^\./||')
  for rel in torch/version.py "${paths[@]}" "${overlay[@]}"; do
    [ -f "$root/$rel" ] || continue
    mkdir -p "$scratch/$(dirname "$rel")"
    cp "$root/$rel" "$scratch/$rel"
  done
  "$REPO/scripts/apply_and_build.sh" --torch-dir "$scratch/torch" --revert >/dev/null

  mkdir -p "$WS"
  git -C "$WS" init --quiet
  for rel in "${paths[@]}"; do
    [ -f "$scratch/$rel" ] || die "$EXIT_FAIL" "$rel is not a file of torch at $root"
    mkdir -p "$WS/$(dirname "$rel")"
    cp "$scratch/$rel" "$WS/$rel"
    git -C "$WS" add -- "$rel"
  done
  git -C "$WS" "${GIT_ID[@]}" commit --quiet \
    -m "Base: PyTorch v$(base_field "$PATCHES/BASE" version) ($(base_field "$PATCHES/BASE" commit))"
  git -C "$WS" tag base
  git -C "$WS" config user.name "$(git -C "$REPO" config user.name || echo "custom-op-range series")"
  git -C "$WS" config user.email "$(git -C "$REPO" config user.email || echo "custom-op-range@invalid")"
  local p
  while IFS= read -r p; do
    git -C "$WS" am --quiet --keep-non-patch "$PATCHES/$p" || die "$EXIT_FAIL" "git am $p failed in $WS"
  done < <(series_of "$PATCHES")
  info "workspace ready at $WS:"
  git -C "$WS" log --format='  %h %s' base..HEAD
}

cmd_export() {
  [ -d "$WS/.git" ] || die "$EXIT_FAIL" "no workspace at $WS (scripts/$PROG init)"
  git -C "$WS" rev-parse -q --verify base >/dev/null || die "$EXIT_FAIL" "$WS has no 'base' tag"
  [ -z "$(git -C "$WS" status --porcelain --untracked-files=no)" ] ||
    die "$EXIT_FAIL" "$WS has uncommitted changes; commit them first"
  rm -f "$PATCHES"/*.patch
  git -C "$WS" format-patch --quiet --no-numbered --zero-commit --no-signature -o "$PATCHES" base..HEAD
  (cd "$PATCHES" && LC_ALL=C printf '%s\n' *.patch) >"$PATCHES/series"

  local version commit tmp rel
  version="$(base_field "$PATCHES/BASE" version)"
  commit="$(base_field "$PATCHES/BASE" commit)"
  tmp="$(mktemp)"
  {
    echo "# Pinned base of the series; sha256 of every upstream file it touches."
    echo "version $version"
    echo "commit $commit"
    echo "triton $(base_field "$PATCHES/BASE" triton)"
    git -C "$WS" ls-tree -r --name-only base | LC_ALL=C sort | while IFS= read -r rel; do
      echo "sha256 $(git -C "$WS" show "base:$rel" | sha256sum | awk '{ print $1 }') $rel"
    done
  } >"$tmp"
  mv "$tmp" "$PATCHES/BASE"
  info "exported $(wc -l <"$PATCHES/series") patches to $PATCHES"
}

cmd_install() {
  cmd_export
  # Put the pristine files back from the workspace's base commit (the torch may hold an
  # older export of the series, which the new one cannot revert), then apply.
  local root rel
  root="$(dirname "$(torch_dir_of "$PY")")"
  git -C "$WS" ls-tree -r --name-only base | while IFS= read -r rel; do
    git -C "$WS" show "base:$rel" >"$root/$rel"
  done
  if [ -d "$REPO/torch_overlay" ]; then
    (cd "$REPO/torch_overlay" && find . -type f | sed 's|^\./||') | while IFS= read -r rel; do
      rm -f "$root/$rel"
    done
  fi
  "$REPO/scripts/apply_and_build.sh" --python "$PY" --no-demo
}

case "$CMD" in
  init) cmd_init ;;
  export) cmd_export ;;
  install) cmd_install ;;
  *) die "$EXIT_USAGE" "unknown command '$CMD' (see --help)" ;;
esac
