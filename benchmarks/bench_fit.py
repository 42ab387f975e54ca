"""How long a scaling-law fit takes: a 100-run, 6-budget isoFLOP study with 1000 bootstraps of both approaches.

    python benchmarks/bench_fit.py [--runs 100] [--budgets 6] [--bootstrap 1000] [--repeat 3]

Prints the seconds of (1) the fit itself (Approach 2 with its vectorised bootstrap, Approach 3 with its batched,
warm-started refits, nested backtests and error models, predictions, backtests: `document.fit_document`), best of
--repeat, and (2) `fit_laws.py` end to end (reading the CSV, fitting, fit.json, report.md; with and without the
figures). The target is (1) < 10 s on the 2-core development machine.
"""

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from ditlaws.laws.document import fit_document
from ditlaws.laws.study import FitOptions
from ditlaws.laws.synthetic import ParametricTruth, centred_isoflop_table, truth_for

ROOT = Path(__file__).resolve().parents[1]


def study(n_runs: int, n_budgets: int, seed: int = 0):
    """A synthetic study with a floor (E > 0): n_budgets budgets from 1e17 up by 2x, n_runs runs in all."""
    truth = ParametricTruth(truth_for(0.0009, 0.5681, 20.0, -0.1, E=0.4))
    per = int(np.ceil(n_runs / n_budgets))
    table = centred_isoflop_table(truth, np.random.default_rng(seed), 1e17 * 2.0 ** np.arange(n_budgets),
                                  n_sizes=per, noise_rel=1e-3)
    return table.select(np.arange(len(table)) < n_runs)


def write_csv(table, path: Path) -> Path:
    rows = ["budget,N,D,loss"] + [f"{b!r},{n!r},{d!r},{v!r}" for b, n, d, v in
                                  zip(table.nominal.tolist(), table.N.tolist(), table.D.tolist(), table.loss.tolist())]
    path.write_text("\n".join(rows) + "\n")
    return path


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=100)
    p.add_argument("--budgets", type=int, default=6)
    p.add_argument("--bootstrap", type=int, default=1000)
    p.add_argument("--repeat", type=int, default=3)
    args = p.parse_args()
    table = study(args.runs, args.budgets)
    options = FitOptions(n_boot=args.bootstrap)
    times = []
    for _ in range(args.repeat):
        start = time.perf_counter()
        doc = fit_document(table, options, targets=[1e21])
        times.append(time.perf_counter() - start)
    a3 = doc["approach3"]["bootstrap"]
    print(f"fit ({len(table)} runs, {args.budgets} budgets, {doc['approach2']['bootstrap']['n']} Approach-2 and "
          f"{a3['n']} Approach-3 bootstraps, backtests, error models): {min(times):.2f} s (best of {args.repeat}; "
          f"all: {', '.join(f'{t:.2f}' for t in times)})")
    with tempfile.TemporaryDirectory() as tmp:
        csv = write_csv(table, Path(tmp) / "runs.csv")
        for extra, what in ((["--no-figures"], "without figures"), ([], "with figures")):
            start = time.perf_counter()
            subprocess.run([sys.executable, str(ROOT / "fit_laws.py"), "--runs", str(csv), "--out",
                            str(Path(tmp) / "o"), "--bootstrap", str(args.bootstrap), "--predict", "1e21", *extra],
                           check=True, capture_output=True)
            print(f"fit_laws.py end to end {what}: {time.perf_counter() - start:.2f} s")


if __name__ == "__main__":
    main()
