"""Generation metrics (FID, accuracy, samples) for the runs near each budget's optimum, so FID ∝ C^d can be fitted.

Generating images costs far more than a validation loss, so only the `eval.generation_runs` runs of lowest
validation loss per budget are evaluated (the paper reports FID at the compute-optimal size). Their metrics merge
into the store records under `eval` (`eval.fid`, `eval.accuracy`, ...) with a fingerprint of the settings, so a
re-run skips what is done and a change of settings re-evaluates.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections import defaultdict

from ditlaws.config import EvalConfig, SweepConfig

GENERATION_ONLY = ("generation", "generation_runs")


def select_runs(records: list[dict], per_budget: int) -> list[dict]:
    """The `per_budget` records of lowest validation loss in every budget group (budget order, then loss)."""
    groups = defaultdict(list)
    for record in records:
        groups[record["budget"]].append(record)
    chosen = []
    for budget in sorted(groups):
        ranked = sorted(groups[budget], key=lambda r: r["eval"]["val_loss"]["mean"])
        chosen += ranked[:per_budget]
    return chosen


def settings_sha256(sweep: SweepConfig) -> str:
    settings = {k: v for k, v in dataclasses.asdict(sweep.eval).items() if k not in GENERATION_ONLY}
    return hashlib.sha256(json.dumps(settings, sort_keys=True, default=list).encode()).hexdigest()


def evaluate_generation(sweep: SweepConfig, store, records: list[dict], log=print) -> list[dict]:
    """Evaluate the selected runs' generation metrics into their store records; returns all records, updated."""
    from ditlaws.evaluation.runner import evaluate_checkpoint

    sha = settings_sha256(sweep)
    chosen = select_runs(records, sweep.eval.generation_runs)
    updated = {}
    for i, record in enumerate(chosen, 1):
        done = (record.get("eval") or {}).get("generation") or {}
        if done.get("sha256") == sha:
            log(f"[generation {i}/{len(chosen)}] {record['run_id']}  done, skipped")
            continue
        run_dir = record["sweep"]["output_dir"]
        report, path = evaluate_checkpoint(run_dir, None, eval_options(sweep))
        summary = {k: v for k, v in report["summary"].items() if k != "val_loss"}  # the sweep's own loss stays
        updated[record["run_id"]] = store.update_run(sweep.study, record["run_id"], {"eval": {
            **summary, "generation": {"sha256": sha, "metrics": list(sweep.eval.metrics), "eval_json": str(path)}}})
        log(f"[generation {i}/{len(chosen)}] {record['run_id']}  " +
            "  ".join(f"{k} {v:.4g}" for k, v in summary.items() if isinstance(v, (int, float))))
    return [updated.get(r["run_id"], r) for r in records]


def eval_options(sweep: SweepConfig):
    """The evaluation settings of the generation metrics, as evaluate_checkpoint takes them."""
    names = {f.name for f in dataclasses.fields(EvalConfig)}
    values = {k: v for k, v in dataclasses.asdict(sweep.eval).items() if k in names}
    values["metrics"] = tuple(m for m in sweep.eval.metrics if m != "loss")
    return EvalConfig(**values)
