#!/usr/bin/env bash
# `make demo`: a small but complete text-to-image scaling study on CPU (see the README's "The demo" for the
# measured numbers). Progressive, as a study with a real budget would run:
#   1. sweep eight budgets x six sizes from trunks (configs/sweeps/demo.yaml): one constant-LR trunk per size, a WSD
#      cooldown branch per budget, validation loss of every branch, FID + accuracy + samples for the best size of
#      every budget;
#   2. fit the laws on those budgets and let `sweep next` propose seven sizes around the predicted N_opt of a 9th,
#      larger budget (continuing the trunks of the sizes it picks); train those;
#   3. fit all nine budgets (the backtest predicts the largest from the others, with the extrapolation-error
#      interval of nested backtests) and write the report with the samples of every budget's compute-optimal run.
# Runs already in the store are skipped, so an interrupted demo resumes where it stopped. Stage times go to
# $out/timing.json (benchmarks/bench_demo.py reads them).
set -euo pipefail
out=${1:-outputs/demo}
py=${PY:-.venv/bin/python}
next_budget=${DEMO_NEXT_BUDGET:-1.38e12}
next_sizes=${DEMO_NEXT_SIZES:-7}   # DEMO_NEXT_SIZES, DEMO_BOOTSTRAP: tests/test_readme.py runs a tiny study
bootstrap=${DEMO_BOOTSTRAP:-200}
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1
started=$(date +%s)
elapsed() { echo "$(( $(date +%s) - started )) s"; }
stamps=()
stage_done() { stamps+=("\"$1\": $(( $(date +%s) - started ))"); }

features=${DITLAWS_CACHE:-$HOME/.cache/ditlaws}/features/builtin_cnn.safetensors
if ! "$py" -c "import sys; from ditlaws.feature_net.train import reusable; sys.exit(not reusable(sys.argv[1]))" \
    "$features"; then
  echo "== feature network: training it once for FID and accuracy (~4 min on 2 cores, not counted) -> $features"
  "$py" -m ditlaws.feature_net --out "$features"
  started=$(date +%s)
fi

echo "== 1. sweep: configs/sweeps/demo.yaml -> $out/sweep"
"$py" -m ditlaws.sweep --config configs/sweeps/demo.yaml --out "$out/sweep" --dry-run | tail -n +2
"$py" -m ditlaws.sweep --config configs/sweeps/demo.yaml --out "$out/sweep"

stage_done sweep
echo "== 2. fit eight budgets, propose the sizes of C = $next_budget ($(elapsed))"
"$py" fit_laws.py --runs "$out/sweep/store" --out "$out/fit_8_budgets" --bootstrap "$bootstrap" --no-figures \
  --predict "$next_budget" >/dev/null
"$py" -m ditlaws.sweep next --from configs/sweeps/demo.yaml --store "$out/sweep/store" --budget "$next_budget" \
  --sizes "$next_sizes" --span 2.5 --write "$out/next.yaml"
"$py" -m ditlaws.sweep --config "$out/next.yaml" --out "$out/sweep"
stage_done next

echo "== 3. fit all nine budgets -> $out/fit ($(elapsed))"
"$py" fit_laws.py --runs "$out/sweep/store" --out "$out/fit" --bootstrap "$bootstrap" --predict 1e13 1e15
stage_done fit
(IFS=,; echo "{${stamps[*]}}") > "$out/timing.json"

"$py" - "$out/fit/fit.json" "$out/sweep/store" "$(elapsed)" <<'EOF'
import sys

from ditlaws.laws.predict import load_fit
from ditlaws.laws.samples_figure import compute_optimal_runs
from ditlaws.store import LocalStore
from ditlaws.sweep.trunks import trained_flops

fit, store, took = load_fit(sys.argv[1]), LocalStore(sys.argv[2]), sys.argv[3]
doc = fit.doc
cost = trained_flops(store.list_runs("demo"))
print(f"\nDemo done in {took}: {cost['isoflop_points']} isoFLOP points over {cost['budgets']} budgets from "
      f"{cost['trunks']} trunks, {cost['trained_flops']:.3g} FLOPs trained (6ND; independent runs: "
      f"{cost['independent_flops']:.3g}).")
for row in doc.get("backtest") or []:
    if row["holdout"] != 1 or row["approach"] != "approach2":
        continue
    fid = ((doc.get("headline") or {}).get("FID") or [None, None])[1]  # FID's headline law, when FID was fitted
    for name in ("N_opt", "L_opt", "L_opt_floor", fid):
        q = row["quantities"].get(name)
        if q is None:
            continue
        # the extrapolation-error interval needs nested backtests (>= 4 fitted budgets); else run noise only
        interval, covered, kind = ((q["ci90"], q["covered"], "90 % with extrapolation error") if q["ci90"] else
                                   (q["ci90_noise"], q["covered_noise"], "90 % from run noise"))
        print(f"  backtest, C = {row['C']:.3g} held out: {name} predicted {q['predicted']:.4g} "
              f"[{interval[0]:.4g}, {interval[1]:.4g}] ({kind}), measured {q['actual']:.4g} "
              f"({100 * q['rel_error']:+.1f} %), {'covered' if covered else 'NOT covered'}")
print("  compute-optimal run of each budget: FID, colour / position / shape accuracy (chance in brackets)")
for r in compute_optimal_runs(store.list_runs("demo")):
    ev = r["eval"]
    acc = "  ".join(f"{ev[k]:.2f}" for k in ("accuracy_colour", "accuracy_position", "accuracy_shape") if k in ev)
    chance = ev.get("accuracy_chance") or {}
    ch = " / ".join(f"{chance[k]:.2f}" for k in ("accuracy_colour", "accuracy_position", "accuracy_shape")
                    if k in chance)
    fid = f"{ev['fid']:.1f}" if "fid" in ev else "n/a"
    print(f"    C = {r['budget']:.3g}  N = {r['N']:,.0f}  loss {ev['val_loss']['mean']:.4f}  FID {fid}  accuracy {acc}"
          + (f"  [{ch}]" if ch else ""))
EOF
echo "Outputs in $out:"
echo "  fit/report.md, fit/fit.json, fit/*.png   the laws, predictions, backtests, samples by budget"
echo "  sweep/store/runs/demo/*.json              one record per run (what fit_laws.py reads)"
echo "  sweep/runs/<run_id>/                      each run: model/ (diffusers format), metrics.jsonl, eval.json"
