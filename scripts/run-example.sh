#!/usr/bin/env bash
# Set up .venv and run the main job on the embedded default model (SmolLM2-135M-Instruct, offline):
# evaluate it on the shipped `sample` benchmark (33 short prompts of the paper's seven tasks) once
# plainly and once steered by a pricing policy, score the same answers under both reward presets
# (`paper` and `robust`) with the deterministic rule judge, and write a report per preset
# (report.md, report.json, PNG plots, report.html). Rerunning resumes; extra arguments go to the
# two generating `gtalign eval` runs (e.g. --limit 8). Output: $GTALIGN_EXAMPLE_OUT (default
# ./gtalign-example).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash scripts/setup.sh dev,embedded,serve,eval
OUT="${GTALIGN_EXAMPLE_OUT:-gtalign-example}"
GTALIGN=.venv/bin/gtalign
status=0
step() {  # run one step; a step that leaves failed rows (exit 1) does not stop the others
  local code=0
  "$@" || code=$?
  if (( code > 1 )); then exit "$code"; fi
  if (( code > status )); then status=$code; fi
}
COMMON=(--benchmark sample --backend embedded --judge rule --max-tokens 64)
step "$GTALIGN" eval "${COMMON[@]}" --preset paper --name plain --out "$OUT/plain-paper" "$@"
step "$GTALIGN" eval "${COMMON[@]}" --preset paper --name steered --steer --pricing api-pay-per-token \
  --on-ignored default --out "$OUT/steered-paper" "$@"
step "$GTALIGN" eval --answers-from "$OUT/plain-paper" --preset robust --judge rule --name plain --out "$OUT/plain-robust"
step "$GTALIGN" eval --answers-from "$OUT/steered-paper" --preset robust --judge rule --name steered \
  --out "$OUT/steered-robust"
step "$GTALIGN" report "$OUT/plain-paper" "$OUT/steered-paper" --out "$OUT/report-paper"
step "$GTALIGN" report "$OUT/plain-robust" "$OUT/steered-robust" --out "$OUT/report-robust"
echo
echo "reports: $OUT/report-paper/report.html and $OUT/report-robust/report.html (and report.md, PNGs)"
exit "$status"
