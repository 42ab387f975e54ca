#!/usr/bin/env bash
# `make demo`: a small but complete isoFLOP study on CPU (~8 minutes on 2 cores, plus ~2 minutes once for the FID
# feature network): plan 3 budgets x 5 tiny text-to-image DiTs -> train each -> validation loss -> run store ->
# fit the scaling laws (fit_laws.py) -> evaluate the best run of the largest budget (FID, samples, ood).
set -euo pipefail
out=${1:-outputs/demo}
py=${PY:-.venv/bin/python}
# Tiny models: one intra-op thread is as fast as two here and never stalls when the machine is busy.
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1
started=$(date +%s)

features=${DITLAWS_CACHE:-$HOME/.cache/ditlaws}/features/builtin_cnn.safetensors
if [ ! -f "$features" ]; then
  echo "== FID features: training the built-in feature network once (~2 min) -> $features"
  "$py" -m ditlaws.feature_net --out "$features"
fi

echo "== sweep: configs/sweeps/demo.yaml -> $out/sweep (runs already in the store are skipped)"
"$py" -m ditlaws.sweep --config configs/sweeps/demo.yaml --out "$out/sweep" --dry-run | tail -n +2
"$py" -m ditlaws.sweep --config configs/sweeps/demo.yaml --out "$out/sweep"

echo "== fit: scaling laws from $out/sweep/store -> $out/fit"
fit_ok=1
"$py" fit_laws.py --runs "$out/sweep/store" --out "$out/fit" --bootstrap 200 --predict 1e12 1e13 1e15 || fit_ok=0
if [ "$fit_ok" = 0 ]; then
  echo "(fit_laws.py could not fit laws from this sweep; the line above says why. The demo goes on.)"
fi

# The run to evaluate in full: the lowest validation loss at the largest budget.
best=$("$py" - "$out/sweep/store" <<'EOF'
import sys
from ditlaws.store import LocalStore
runs = LocalStore(sys.argv[1]).list_runs("demo")
top = max(r["budget"] for r in runs)
best = min((r for r in runs if r["budget"] == top), key=lambda r: r["eval"]["val_loss"]["mean"])
print(best["sweep"]["output_dir"])
EOF
)
echo "== evaluate: $best (validation loss, FID, samples; in-domain and out-of-domain)"
"$py" evaluate_dit.py --checkpoint "$best" --metrics loss,fid,samples --splits val,ood \
  --fid-samples 128 --grid-samples 16 --fid-weights "$features"

echo
echo "Done in $(( $(date +%s) - started )) s. Outputs in $out:"
echo "  sweep/store/runs/demo/*.json  one record per run (N, D, C, losses, eval.val_loss): what fit_laws.py reads"
echo "  sweep/runs/<run_id>/          each run: model/ (diffusers format), metrics.jsonl, summary.json, config.yaml"
if [ "$fit_ok" = 1 ]; then
  echo "  fit/report.md, fit/fit.json   the fitted laws N_opt, D_opt, L vs C, predictions, backtests"
  ls "$out"/fit/*.png 2>/dev/null | sed 's/^/  /'
fi
echo "  $best/eval.json  the best large-budget run: validation loss, FID (val and ood)"
ls "$best"/*.png 2>/dev/null | sed 's/^/  /'
