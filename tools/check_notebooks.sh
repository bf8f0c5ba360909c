#!/usr/bin/env bash
# Fail when nbdev-export would change mlkit/ or nbdev-clean would change a notebook.
# Works on a scratch copy, so it never touches the working tree.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin="$root/.venv/bin"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
cp -r "$root/nbs" "$root/mlkit" "$root/pyproject.toml" "$tmp"/
find "$tmp" -name __pycache__ -prune -exec rm -rf {} +
(cd "$tmp" && git init -q . && "$bin/nbdev-export" >/dev/null && "$bin/nbdev-clean" >/dev/null)
status=0
if ! diff -r -q "$root/mlkit" "$tmp/mlkit" --exclude=__pycache__ --exclude='*.egg-info' >/dev/null; then
  echo "nbdev-export would change mlkit/ (edit the notebooks, then run 'make export'):"; diff -r -q "$root/mlkit" "$tmp/mlkit" --exclude=__pycache__ --exclude='*.egg-info' || true; status=1
fi
if ! diff -r -q "$root/nbs" "$tmp/nbs" --exclude=__pycache__ --exclude=.ipynb_checkpoints >/dev/null; then
  echo "nbdev-clean would change notebooks (run 'make export'):"; diff -r -q "$root/nbs" "$tmp/nbs" --exclude=__pycache__ --exclude=.ipynb_checkpoints || true; status=1
fi
[ $status -eq 0 ] && echo "notebooks clean; mlkit/ is what nbs/ exports"
exit $status
