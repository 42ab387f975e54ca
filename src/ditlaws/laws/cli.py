"""Command line for fit_laws.py: runs -> laws, predictions, backtests, figures, fit.json, report.md.

Every flag is a field of ``FitInputs`` (what to read and write) or ``FitOptions`` (how to fit), built by
``ditlaws.options``; bad input of any kind is one line ``error: ...`` and exit 2, checked before any fitting.
"""

from __future__ import annotations

import dataclasses
import os
import re
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ditlaws.errors import UserError, report, report_no_space
from ditlaws.laws.compare import compare, seeds_for
from ditlaws.laws.document import study_doc, write_fit_json
from ditlaws.laws.ood import ood_fit
from ditlaws.laws.study import FitOptions, fit_study
from ditlaws.laws.table import RunTable, group_budgets, load_runs
from ditlaws.options import ArgumentParser, add_arguments, flag_of, from_arguments, option, spec
from ditlaws.paths import check_writable

SECTION = "fit_laws"


@dataclass
class FitInputs:
    """What fit_laws.py reads and writes."""

    runs: str | None = option(None, help="run-store folder (runs/<study>/<run_id>.json) or CSV N,D,loss[,budget][,fid]"
                                "[,accuracy][,clip_score][,ood_loss][,study]", metavar="PATH")
    out: str | None = option(None, help="output folder for fit.json, report.md and figures", metavar="DIR")
    hub: str | None = option(None, help="instead of --runs: a results repo on the Hub, <org>/<study>-results (one "
                                        "pinned snapshot; offline from the cache with HF_HUB_OFFLINE=1)",
                             metavar="REPO")
    revision: str | None = option(None, help="with --hub: the commit (sha, branch or tag) to fit; written into "
                                             "fit.json and the report", metavar="SHA")
    push: bool = option(False, help="with --hub: also commit this fit (fit.json, report, figures) to the results "
                                    "repo's fit/ folder, where the Space reads it")
    predict: tuple[float, ...] = option((), help="target budget(s) in FLOPs (default: 10x the largest fitted "
                                                 "budget)", gt=0, cli="nargs", metavar="C")
    compare: tuple[str, ...] = option((), help="other stores/CSVs to compare against", cli="nargs", metavar="RUNS")
    study: str | None = option(None, help="the headline study when there are several; names the study of a CSV "
                                          "without a study column")
    strict: bool = option(False, help="a malformed or partial store record is an error (default: listed and "
                                      "skipped)")
    drop_duplicates: bool = option(False, help="keep the first of duplicated runs (default: an error naming them)")
    figures: bool = option(True, help="write no figures", flag="--no-figures")


def build_parser() -> ArgumentParser:
    p = ArgumentParser(prog="fit_laws.py", description="Fit compute-optimal scaling laws to finished runs.")
    add_arguments(p, FitInputs)
    add_arguments(p, FitOptions, exclude=("warn_points", "min_budgets"))
    return p


_FLAGS = {f.name: flag_of(f, "kebab", None) for cls in (FitInputs, FitOptions) for f in dataclasses.fields(cls)}


def _flag_message(message: str) -> str:
    """`fit_laws.seed must be >= 0` -> `--seed must be >= 0` (errors name the flag the user typed)."""
    return re.sub(rf"{SECTION}\.(\w+)(\[\d+\])?", lambda m: _FLAGS.get(m.group(1), m.group(0)), message)


def parse(argv: list[str] | None) -> tuple[FitInputs, FitOptions]:
    ns = build_parser().parse_args(argv)
    try:
        inputs = from_arguments(FitInputs, ns, section=SECTION)
        options = from_arguments(FitOptions, ns, section=SECTION)
    except UserError as e:
        raise UserError(_flag_message(str(e))) from None
    if (inputs.runs is None) == (inputs.hub is None):
        raise UserError("give exactly one of --runs (a run-store folder or CSV) or --hub (<org>/<study>-results)")
    if inputs.revision is not None and inputs.hub is None:
        raise UserError("--revision needs --hub (a local store has no revisions)")
    if inputs.push and inputs.hub is None:
        raise UserError("--push needs --hub (the results repo to write the fit into)")
    out = next(f for f in dataclasses.fields(FitInputs) if f.name == "out")
    if inputs.out is None:
        raise UserError(f"--out is required: {spec(out)['help']}")
    for flag, value in (("--bootstrap", options.n_boot), ("--parametric-bootstrap", options.parametric_boot)):
        if value is not None and value > MAX_DRAWS:  # bounded before any array of draws is allocated
            raise UserError(f"{flag} must be <= {MAX_DRAWS:,} (the intervals stop changing long before), got "
                            f"{value:,}")
    check_out_not_in_store(Path(inputs.out))
    return inputs, options


MAX_DRAWS = 100_000
PREDICT_RANGE = (1e-3, 1e6)  # --predict within these factors of the smallest / largest budget of the data


def check_out_not_in_store(out: Path) -> None:
    """A fit written inside a run store's runs/ (or models/) would be read back as run records."""
    here = out.resolve()
    for folder in (here, *here.parents):
        if folder.name in ("runs", "models") and (folder.parent / "runs").is_dir() and \
                any((folder.parent / "runs").glob("*/*.json")):
            raise UserError(f"--out {out}: inside the run store {folder.parent} ({folder.name}/); write the fit "
                            "outside the store, e.g. next to it")


def check_targets(predict: tuple[float, ...], tables: list) -> None:
    """Prediction budgets far outside the data (a typo like 1e-300, or 1e40) are refused before fitting."""
    lo = min(float(np.min(t.C)) for t in tables)
    hi = max(float(np.max(t.C)) for t in tables)
    for target in predict:
        if not PREDICT_RANGE[0] * lo <= target <= PREDICT_RANGE[1] * hi:
            raise UserError(f"--predict {target:g}: outside what the data can speak for (its budgets span {lo:.3g} "
                            f"to {hi:.3g} FLOPs; predictions go from {PREDICT_RANGE[0] * lo:.3g} to "
                            f"{PREDICT_RANGE[1] * hi:.3g})")


def check_inputs(inputs: FitInputs) -> None:
    for flag, paths in (("--runs", [inputs.runs] if inputs.runs else []), ("--compare", list(inputs.compare))):
        for path in paths:
            if not Path(path).exists():
                raise UserError(f"{flag}: {path} does not exist (give a CSV file or a run-store folder)")


def _studies(path: str | None, flag: str, inputs: FitInputs, options: FitOptions) -> list[RunTable]:
    if path is None:  # --hub: one pinned snapshot of the results repo, read through the store interface
        from ditlaws.laws.table import table_from_store
        from ditlaws.store import open_results

        table = table_from_store(open_results(inputs.hub, inputs.revision), flops=options.flops, strict=inputs.strict,
                                 drop_duplicates=inputs.drop_duplicates, source=f"hub:{inputs.hub}", flag="--hub")
        group_budgets(table, options.budget_tolerance)
        return [table.for_study(s) for s in table.studies]
    table = load_runs(path, flops=options.flops, flag=flag, strict=inputs.strict,
                      drop_duplicates=inputs.drop_duplicates)
    if inputs.study and flag == "--runs" and table.provenance.get("kind") == "csv" and \
            len(table.studies) == 1 and table.studies[0] == Path(path).stem:
        table.study = np.full(len(table), inputs.study)  # a CSV without a study column: --study names it
    group_budgets(table, options.budget_tolerance)
    return [table.for_study(s) for s in table.studies]


def run(inputs: FitInputs, options: FitOptions) -> dict:
    from ditlaws.laws import report

    out = Path(inputs.out)
    check_writable(out, "--out", folder=True)  # before any fitting; created only once there is a fit to write
    check_inputs(inputs)
    tables = _studies(inputs.runs, "--runs", inputs, options)
    for other in inputs.compare:
        tables += _studies(other, "--compare", inputs, options)
    check_targets(inputs.predict, tables)
    names = [t.studies[0] for t in tables]
    if len(set(names)) < len(names):  # same study name in two inputs: qualify by file
        for t in tables:
            t.study = np.full(len(t), f"{t.studies[0]} ({Path(t.source).stem})")
        names = [t.studies[0] for t in tables]
    if inputs.study is not None and inputs.study not in names:
        raise UserError(f"--study: {inputs.study!r} not among the studies found: {', '.join(names)}")
    order = sorted(range(len(tables)), key=lambda i: names[i] != (inputs.study or names[0]))
    tables = [tables[i] for i in order]

    rngs = seeds_for(options.seed, len(tables))
    fits = [fit_study(t, options, rng) for t, rng in zip(tables, rngs)]
    primary = fits[0]
    targets = list(inputs.predict) or [10 * _largest_fitted(primary)]
    docs = [study_doc(sf, targets, rng) for sf, rng in zip(fits, rngs)]
    comparison = compare(fits) if len(fits) > 1 else None
    ood = ood_fit(primary.table)
    inputs_doc = [{"path": t.source, "fingerprint": t.fingerprint, "n_runs": len(t), "study": t.studies[0],
                   "flops": t.flops, "revision": t.provenance.get("revision"), "provenance": t.provenance,
                   "n_skipped": len(t.skipped)} for t in tables]
    opts = {**dataclasses.asdict(inputs), **dataclasses.asdict(options)}
    out.mkdir(parents=True, exist_ok=True)
    with staged(out) as stage:  # all outputs or none: a full disk leaves the earlier fit whole
        path = write_fit_json(stage / "fit.json", docs[0], docs[1:], inputs_doc, opts, comparison, ood)
        figures = {}
        if inputs.figures:
            from ditlaws.laws import plots

            figures = plots.all_figures(path, stage)
            samples = samples_figure_of(inputs.runs, tables[0].studies[0], stage / "fig6_samples_by_budget.png")
            if samples is not None:
                figures["samples"] = samples.name
        report.write_report(stage / "report.md", path, figures)
    if inputs.push:
        from ditlaws.store import HubStore

        org, _, name = inputs.hub.partition("/")
        sha = HubStore(org, name.removesuffix("-results")).put_fit(out)
        print(f"pushed the fit to {inputs.hub} fit/ (commit {sha})")
    return docs[0]


@contextmanager
def staged(out: Path):
    """A hidden folder inside `out` to write a fit's files into; when the block succeeds they are moved into `out`
    (renames: no space needed, each file whole), fit.json last; on any error the folder goes and `out` is as before.
    """
    import shutil
    import tempfile

    from ditlaws.jsonio import umask_mode

    stage = Path(tempfile.mkdtemp(dir=out, prefix=".fit-staging-"))
    try:
        yield stage
        names = sorted((p.name for p in stage.iterdir()), key=lambda n: n == "fit.json")
        for name in names:
            os.chmod(stage / name, umask_mode())
            os.replace(stage / name, out / name)
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def samples_figure_of(runs: str | None, study: str, path: Path) -> Path | None:
    """The samples-by-budget picture, when the runs are a local store whose records have sample grids."""
    if runs is None or not Path(runs).is_dir():
        return None
    from ditlaws.laws.samples_figure import samples_by_budget
    from ditlaws.store import LocalStore

    return samples_by_budget(LocalStore(runs).list_runs(study), path)


def _largest_fitted(sf) -> float:
    if sf.a2_status == "fitted":
        return float(sf.C[sf.used].max())
    return float(sf.table.C.max())


def main(argv: list[str] | None = None) -> int:
    try:
        inputs, options = parse(argv)
        doc = run(inputs, options)
    except UserError as e:
        return report(e)
    except OSError as e:
        return report_no_space(e, inputs.out, "the earlier fit there is intact: free space and run again")
    from ditlaws.laws.report import answer

    for line in notes(doc):
        print(f"note: {line}", file=sys.stderr)
    print(answer(doc).replace("**", ""))
    print(f"wrote {Path(inputs.out) / 'fit.json'} and {Path(inputs.out) / 'report.md'}")
    return 0


def notes(doc: dict) -> list[str]:
    a2 = doc["approach2"]
    lines = [] if a2["status"] == "fitted" else [a2["reason"]]
    lines += [m for b in a2["budgets"] for m in b["messages"]][:40]
    lines += [f"skipped {s['where']}: {s['reason']}" for s in doc["skipped_records"]]
    lines += doc["warnings"]
    for p in doc["predictions"]:
        lines += p["warnings"]
    return list(dict.fromkeys(lines))
