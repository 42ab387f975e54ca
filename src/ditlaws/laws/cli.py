"""Command line for fit_laws.py: runs -> laws, predictions, backtests, figures, fit.json, report.md."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from ditlaws.errors import UserError
from ditlaws.laws.backtest import backtest
from ditlaws.laws.bootstrap import BOOTSTRAP_METHODS
from ditlaws.laws.compare import compare, seeds_for
from ditlaws.laws.isoflop import FID_METHODS, OPTIMUM_METHODS
from ditlaws.laws.ood import ood_fit
from ditlaws.laws.study import FitOptions, fit_study, predictions
from ditlaws.laws.table import FLOP_CONVENTIONS, RunTable, load_runs


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="fit_laws.py", description=__doc__)
    p.add_argument("--runs", required=True, help="run-store folder (runs/<study>/<run_id>.json) or CSV "
                                                 "budget,N,D,loss[,fid][,ood_loss][,study]")
    p.add_argument("--out", required=True, help="output folder for fit.json, report.md and figures")
    p.add_argument("--predict", type=float, nargs="+", default=None, metavar="C",
                   help="target budget(s) in FLOPs (default: 10x the largest fitted budget)")
    p.add_argument("--compare", nargs="+", default=[], metavar="RUNS", help="other stores/CSVs to compare against")
    p.add_argument("--study", default=None, help="which study is the headline when there are several")
    p.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples (default 1000)")
    p.add_argument("--bootstrap-method", choices=BOOTSTRAP_METHODS, default="noise",
                   help="noise: refit with losses perturbed by the seed noise (default); resample: resample runs "
                        "within budgets")
    p.add_argument("--noise-rel", type=float, default=None,
                   help="measured seed-to-seed relative loss noise for --bootstrap-method noise "
                        "(default: estimated from the parabola residuals)")
    p.add_argument("--parametric-bootstrap", type=int, default=None,
                   help="resamples for Approach 3 (each an L-BFGS fit; default: same as --bootstrap)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--flops", choices=FLOP_CONVENTIONS, default="6nd",
                   help="compute convention: 6nd (C = 6·N·D) or closed_form (the runs' C_closed_form)")
    p.add_argument("--optimum", choices=OPTIMUM_METHODS, default="parabola", help="per-budget optimum estimator")
    p.add_argument("--fid-method", choices=FID_METHODS, default="parabola",
                   help="FID at the optimum: parabola of ln FID in ln N evaluated at N_opt, or the nearest run")
    p.add_argument("--allow-edge", action="store_true", help="keep budgets whose minimum lies outside the sampled "
                                                              "sizes (their optimum is then an extrapolation)")
    p.add_argument("--fit-window", type=float, default=None, metavar="F",
                   help="fit each budget's parabola only to runs within a factor F in N of its best run "
                        "(default: all runs, as the paper)")
    p.add_argument("--screen-outliers", action="store_true", help="drop one run per budget whose studentized "
                                                                   "residual exceeds 4")
    p.add_argument("--min-points", type=int, default=3, help="fewest distinct sizes for a budget to count")
    p.add_argument("--holdout", type=int, default=2, help="backtest: hold out up to this many largest budgets")
    p.add_argument("--no-parametric", action="store_true", help="skip Approach 3")
    p.add_argument("--no-figures", action="store_true")
    return p


def _studies(path: str, flops: str) -> list[RunTable]:
    table = load_runs(path, flops=flops)
    return [table.for_study(s) for s in table.studies]


def run(args: argparse.Namespace) -> dict:
    from ditlaws.laws import plots, report

    if args.bootstrap < 20:
        raise UserError(f"--bootstrap: {args.bootstrap} resamples is too few for intervals; use at least 20")
    if args.noise_rel is not None and not args.noise_rel > 0:
        raise UserError(f"--noise-rel must be > 0, got {args.noise_rel}")
    if args.fit_window is not None and not args.fit_window > 1:
        raise UserError(f"--fit-window must be a factor > 1, got {args.fit_window}")
    if args.predict and any(not c > 0 for c in args.predict):
        raise UserError(f"--predict: budgets must be > 0 FLOPs, got {args.predict}")
    tables = _studies(args.runs, args.flops)
    for other in args.compare:
        tables += _studies(other, args.flops)
    names = [t.studies[0] for t in tables]
    if len(set(names)) < len(names):  # same study name in two inputs: qualify by file
        for t in tables:
            t.study = np.full(len(t), f"{t.studies[0]} ({Path(t.source).stem})")
        names = [t.studies[0] for t in tables]
    if args.study is not None and args.study not in names:
        raise UserError(f"--study: {args.study!r} not among the studies found: {', '.join(names)}")
    order = sorted(range(len(tables)), key=lambda i: names[i] != (args.study or names[0]))
    tables = [tables[i] for i in order]

    options = FitOptions(n_boot=args.bootstrap, seed=args.seed, bootstrap=args.bootstrap_method,
                         noise_rel=args.noise_rel, allow_edge=args.allow_edge, screen_outliers=args.screen_outliers,
                         optimum=args.optimum, fid_method=args.fid_method, window=args.fit_window,
                         min_points=args.min_points, holdout=args.holdout, parametric=not args.no_parametric,
                         parametric_boot=args.parametric_bootstrap)
    fits = [fit_study(t, options, rng) for t, rng in zip(tables, seeds_for(args.seed, len(tables)))]
    primary = fits[0]
    targets = args.predict or [float(10 * primary.C[primary.used].max())]

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    entries = [report.study_entry(sf, predictions(sf, targets), backtest(sf, options.holdout)) for sf in fits]
    comparison = compare(fits) if len(fits) > 1 else None
    figures = {}
    if not args.no_figures:
        figures["isoflop"] = plots.isoflop_figure(primary, targets, out / "fig1_isoflop.png").name
        figures["loss_fid"] = plots.loss_fid_figure(primary, targets, out / "fig3_loss_fid.png").name
        if comparison:
            figures["compare"] = plots.compare_figure(fits, targets, out / "fig5_compare.png").name
    ood = ood_fit(primary.table)
    if ood and not args.no_figures:
        figures["ood"] = plots.ood_figure(primary, ood, out / "fig4_ood.png").name
    inputs = [{"path": t.source, "fingerprint": t.fingerprint, "n_runs": len(t), "study": t.studies[0],
               "flops": t.flops, "revision": t.provenance.get("revision"), "provenance": t.provenance}
              for t in tables]
    opts = {k: v for k, v in vars(args).items()}
    report.write_fit_json(out / "fit.json", entries[0], entries[1:], inputs, opts, comparison, ood)
    report.write_report(out / "report.md", entries[0], entries[1:], figures, comparison, ood, inputs)
    return entries[0]


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        entry = run(args)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    from ditlaws.laws.report import answer

    for b in entry["approach2"]["budgets"]:
        for m in b["messages"]:
            print(f"note: {m}", file=sys.stderr)
    print(answer(entry).replace("**", ""))
    print(f"wrote {Path(args.out) / 'fit.json'} and {Path(args.out) / 'report.md'}")
    return 0
