#!/usr/bin/env bash
# Run the notebook tests with nbdev-test and fail when nothing was tested (nbdev-test exits 0 then).
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=$("$root/.venv/bin/nbdev-test" "$root/nbs" --skip-folder-re "^([_.]|reports)" --n-workers "${NB_WORKERS:-2}" --timing "$@" 2>&1); rc=$?
echo "$out"
if echo "$out" | grep -q "No files were eligible"; then echo "nbdev-test found no notebooks to test"; exit 1; fi
[ $rc -eq 0 ] && echo "notebook tests: $(ls "$root"/nbs/*.ipynb | wc -l) notebooks passed"
exit $rc
