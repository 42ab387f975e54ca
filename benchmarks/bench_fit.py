"""How long a scaling-law fit takes, and how Approach 3's two solvers compare.

    python benchmarks/bench_fit.py [--runs 100] [--budgets 6] [--bootstrap 1000] [--repeat 3] [--no-solvers]

Solvers (``--a3-solver vpnls|lbfgs``): on synthetic surfaces with known parameters (Hoffmann et al. 2022's
Chinchilla fit E=1.69, A=406.4, B=410.7, alpha=0.34, beta=0.28, and Besiroglu et al. 2024's reanalysis of the same
data, E=1.82, A=482.01, B=2085.43, alpha=0.3478, beta=0.3658) on a Chinchilla-style N x D grid with 0.1 % and 1 %
noise, and on the 15 Porian et al. (2024) isoFLOP sets in tests/data: the Huber objective each reaches (the ratio
lbfgs / vpnls: > 1 means VPNLS went lower), the parameters, and the seconds.

Then the seconds of (1) the fit itself (Approach 2 with its vectorised bootstrap, Approach 3 with its batched,
warm-started refits, nested backtests and error models, predictions, backtests: `document.fit_document`), best of
--repeat, and (2) `fit_laws.py` end to end (reading the CSV, fitting, fit.json, report.md; with and without the
figures). The target is (2) without figures <= 10 s on the 2-core development machine.
"""

import argparse
import csv
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from ditlaws.laws.document import fit_document
from ditlaws.laws.objective import Problem, huber_objective
from ditlaws.laws.parametric import SOLVERS, ParametricLoss, fit_parametric
from ditlaws.laws.study import FitOptions
from ditlaws.laws.synthetic import ParametricTruth, centred_isoflop_table, nd_grid_table, truth_for

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


HOFFMANN = ParametricLoss(E=1.69, A=406.4, B=410.7, alpha=0.34, beta=0.28)
BESIROGLU = ParametricLoss(E=1.82, A=482.01, B=2085.43, alpha=0.3478, beta=0.3658)


def _solve(N, D, loss, solver):
    start = time.perf_counter()
    fit = fit_parametric(N, D, loss, solver=solver)
    seconds = time.perf_counter() - start
    p = Problem.of(N, D, loss)
    return fit, huber_objective(fit.theta, p)[0], seconds


def _params(m) -> str:
    return f"E={m.E:.4g} A={m.A:.4g} B={m.B:.4g} alpha={m.alpha:.4f} beta={m.beta:.4f}"


def compare_solvers() -> None:
    for name, truth in (("Hoffmann 2022", HOFFMANN), ("Besiroglu 2024", BESIROGLU)):
        for noise in (1e-3, 1e-2):
            t = nd_grid_table(truth, np.random.default_rng(0), np.geomspace(7e7, 1.6e10, 10),
                              np.geomspace(5e9, 5e11, 10), noise_rel=noise)
            print(f"{name} surface, 100 runs, noise {noise:.1%}: truth {_params(truth)}")
            for solver in SOLVERS:
                fit, obj, sec = _solve(t.N, t.D, t.loss, solver)
                print(f"  {solver:6s} objective {obj:.6e}  {_params(fit)}  {sec:.2f} s")
    rows = [r for r in csv.DictReader(line for line in open(ROOT / "tests/data/porian2024_isoflop_points.csv")
                                      if not line.startswith("#"))]
    configs = {}
    for r in rows:
        configs.setdefault("/".join(r[k] for k in ("dataset", "hparams", "warmup", "decay", "param_count",
                                                    "loss_split")), []).append(r)
    ratios, times = [], {s: 0.0 for s in SOLVERS}
    for config, rs in sorted(configs.items()):
        N, D, L = (np.array([float(r[k]) for r in rs]) for k in ("n", "t", "loss"))
        out = {s: _solve(N, D, L, s) for s in SOLVERS}
        for s in SOLVERS:
            times[s] += out[s][2]
        ratios.append(out["lbfgs"][1] / out["vpnls"][1])
        print(f"Porian {config} ({len(rs)} runs): objective lbfgs/vpnls {ratios[-1]:.6f}; "
              f"vpnls {_params(out['vpnls'][0])}; lbfgs {_params(out['lbfgs'][0])}")
    print(f"Porian, 15 sets: objective ratio lbfgs/vpnls min {min(ratios):.6f}, median {np.median(ratios):.6f}, "
          f"max {max(ratios):.6f}; seconds vpnls {times['vpnls']:.1f}, lbfgs {times['lbfgs']:.1f}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=100)
    p.add_argument("--budgets", type=int, default=6)
    p.add_argument("--bootstrap", type=int, default=1000)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--no-solvers", action="store_true", help="skip the solver comparison")
    args = p.parse_args()
    if not args.no_solvers:
        compare_solvers()
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
