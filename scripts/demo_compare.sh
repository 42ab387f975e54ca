#!/usr/bin/env bash
# `make demo-compare`: the demo's grid for both families, and the paper's Table 1 / Fig. 5 comparison of their
# exponents. The cross-attention study is the demo's own (outputs/demo is reused when it exists); the in-context
# one is the same sweep with `model.family: in_context`, as study `demo_in_context`. About twice `make demo`.
set -euo pipefail
out=${1:-outputs/demo}
py=${PY:-.venv/bin/python}
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1
[ -f "$out/fit/fit.json" ] || bash scripts/demo.sh "$out"

mkdir -p "$out/in_context"
"$py" - configs/sweeps/demo.yaml "$out/in_context/sweep.yaml" <<'PY'
import sys

import yaml

sweep = yaml.safe_load(open(sys.argv[1]))
sweep["study"] = "demo_in_context"
sweep["base"]["model"]["family"] = "in_context"
open(sys.argv[2], "w").write("# configs/sweeps/demo.yaml with the in-context family (written by demo_compare.sh)\n"
                             + yaml.safe_dump(sweep, sort_keys=False))
PY
echo "== in-context sweep: $out/in_context/sweep.yaml"
"$py" -m ditlaws.sweep --config "$out/in_context/sweep.yaml" --out "$out/in_context/sweep"

echo "== compare: cross-attention (demo) vs in-context -> $out/compare"
"$py" fit_laws.py --runs "$out/sweep/store" --compare "$out/in_context/sweep/store" --out "$out/compare" \
  --bootstrap 200
echo "Comparison of exponents: $out/compare/report.md (and fig5_compare.png)"
