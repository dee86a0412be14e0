#!/usr/bin/env bash
# Edit the patch series as git commits. The workspace is one git repository with a
# branch per supported base: branch v<version> starts at tag base-<version> (the
# pristine upstream files the series touches) and holds one commit per patch. The
# primary series is made first; the backport branch takes its commits with
# git cherry-pick, resolved for the older base. export writes every branch back to
# patches/v<version>/ with git format-patch. Nobody edits hunks by hand.
set -euo pipefail

PROG="workspace.sh"
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
WS="$REPO/.workspace"
PY="$REPO/.venv/bin/python"

usage() {
  cat <<EOF
Usage: scripts/$PROG COMMAND [OPTIONS]

Commands:
  init [--with PATH]...   add the branch of PY's torch to the workspace (created if
                          missing): a root commit (tag base-<version>) with the
                          pristine upstream files patches/v<version>/BASE lists (plus
                          each --with PATH, a path like torch/_inductor/graph.py that a
                          new patch will touch), then one commit per patch (git am).
                          Run it once per base, e.g. with --python
                          .venv-2.11.0/bin/python for the backport.
  export                  rewrite patches/v<version>/ (patches, series, the sha256
                          list of BASE) from every branch v<version> of the workspace
  install                 export, then re-apply PY's series to PY's torch (pristine
                          files from the workspace, then apply, no demo): the
                          edit-test loop

Supported bases: $(supported_bases)

Options:
  --workspace DIR   workspace location (default: .workspace)
  --python PY       interpreter whose torch picks the series and gives the pristine
                    files (default: .venv, the primary base)
  -h, --help        this text

Exit codes: 0 ok, $EXIT_FAIL failure, $EXIT_USAGE usage, $EXIT_TOOL missing tool,
$EXIT_VERSION PY's torch is no supported base.
EOF
}

[ $# -gt 0 ] || { usage >&2; exit "$EXIT_USAGE"; }
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
ws_git() { git -C "$WS" "$@"; }

cmd_init() {
  local torch_dir root rel patches version branch
  torch_dir="$(torch_dir_of "$PY")"
  root="$(dirname "$torch_dir")"
  patches="$(series_dir_of_torch "$torch_dir")"
  version="$(base_field "$patches/BASE" version)"
  branch="v$version"
  if [ -d "$WS/.git" ]; then
    ! ws_git rev-parse -q --verify "refs/heads/$branch" >/dev/null ||
      die "$EXIT_FAIL" "$WS already has branch $branch; export what you committed there, then delete it (git branch -D $branch; git tag -d base-$version)"
    [ -z "$(ws_git status --porcelain --untracked-files=no)" ] ||
      die "$EXIT_FAIL" "$WS has uncommitted changes; commit them first"
  else
    mkdir -p "$WS"
    ws_git init --quiet
    ws_git config user.name "$(git -C "$REPO" config user.name || echo "custom-op-range series")"
    ws_git config user.email "$(git -C "$REPO" config user.email || echo "custom-op-range@invalid")"
  fi
  mapfile -t paths < <(awk '$1 == "sha256" { print $3 }' "$patches/BASE")
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

  # A root commit of its own: the bases share no history.
  ws_git checkout --quiet --orphan "$branch"
  ws_git rm -r --quiet --cached --ignore-unmatch . >/dev/null
  find "$WS" -mindepth 1 -maxdepth 1 ! -name .git -exec rm -rf {} +
  for rel in "${paths[@]}"; do
    [ -f "$scratch/$rel" ] || die "$EXIT_FAIL" "$rel is not a file of torch at $root"
    mkdir -p "$WS/$(dirname "$rel")"
    cp "$scratch/$rel" "$WS/$rel"
    ws_git add -- "$rel"
  done
  ws_git "${GIT_ID[@]}" commit --quiet \
    -m "Base: PyTorch v$version ($(base_field "$patches/BASE" commit))" \
    -m "triton $(base_field "$patches/BASE" triton)"
  ws_git tag "base-$version"
  local p
  while IFS= read -r p; do
    ws_git am --quiet --keep-non-patch "$patches/$p" || die "$EXIT_FAIL" "git am $p failed in $WS"
  done < <(series_of "$patches")
  info "workspace branch $branch ready at $WS:"
  ws_git log --format='  %h %s' "base-$version..$branch"
}

# export_branch VERSION: patches/vVERSION/ from workspace branch vVERSION.
export_branch() {
  local version="$1" out="$REPO/patches/v$1" base="base-$1" subject commit triton tmp rel
  subject="$(ws_git log -1 --format=%s "$base")"
  commit="$(sed -n 's/^Base: PyTorch v[^ ]* (\([0-9a-f]*\))$/\1/p' <<<"$subject")"
  [ -n "$commit" ] || die "$EXIT_FAIL" "tag $base: its subject '$subject' is not 'Base: PyTorch v$version (<commit>)'"
  triton="$(ws_git log -1 --format=%b "$base" | awk '$1 == "triton" { print $2 }')"
  [ -n "$triton" ] || [ ! -f "$out/BASE" ] || triton="$(base_field "$out/BASE" triton)"
  [ -n "$triton" ] || die "$EXIT_FAIL" "tag $base names no triton version (a 'triton X' line in its message)"
  mkdir -p "$out"
  rm -f "$out"/*.patch
  ws_git format-patch --quiet --no-numbered --zero-commit --no-signature -o "$out" "$base..v$version"
  (cd "$out" && LC_ALL=C printf '%s\n' *.patch) >"$out/series"
  tmp="$(mktemp)"
  {
    echo "# Pinned base of the series; sha256 of every upstream file it touches."
    echo "version $version"
    echo "commit $commit"
    echo "triton $triton"
    ws_git ls-tree -r --name-only "$base" | LC_ALL=C sort | while IFS= read -r rel; do
      echo "sha256 $(ws_git show "$base:$rel" | sha256sum | awk '{ print $1 }') $rel"
    done
  } >"$tmp"
  mv "$tmp" "$out/BASE"
  info "exported $(wc -l <"$out/series") patches to patches/v$version"
}

cmd_export() {
  [ -d "$WS/.git" ] || die "$EXIT_FAIL" "no workspace at $WS (scripts/$PROG init)"
  [ -z "$(ws_git status --porcelain --untracked-files=no)" ] ||
    die "$EXIT_FAIL" "$WS has uncommitted changes; commit them first"
  local branch version n=0
  while IFS= read -r branch; do
    version="${branch#v}"
    ws_git rev-parse -q --verify "refs/tags/base-$version" >/dev/null ||
      die "$EXIT_FAIL" "branch $branch has no tag base-$version to start from"
    export_branch "$version"
    n=$((n + 1))
  done < <(ws_git for-each-ref --format='%(refname:short)' 'refs/heads/v*')
  [ "$n" -gt 0 ] || die "$EXIT_FAIL" "$WS has no branch v<version>"
}

cmd_install() {
  cmd_export
  # Put the pristine files back from the workspace's base commit (the torch may hold an
  # older export of the series, which the new one cannot revert), then apply.
  local root rel torch_dir version
  torch_dir="$(torch_dir_of "$PY")"
  root="$(dirname "$torch_dir")"
  version="$(base_field "$(series_dir_of_torch "$torch_dir")/BASE" version)"
  ws_git ls-tree -r --name-only "base-$version" | while IFS= read -r rel; do
    ws_git show "base-$version:$rel" >"$root/$rel"
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
