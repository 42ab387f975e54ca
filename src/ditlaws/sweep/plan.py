"""A sweep config -> its runs: every (budget, size, seed) with its config and its plan (N, steps, D, C).

Each run's plan comes from `ditlaws.training.plan.plan_run`, the function training itself uses, so what the
plan lists is what is trained. Runs with too few steps are listed with the reason and not run.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path

from ditlaws.config import (
    RunConfig,
    SweepConfig,
    config_from_dict,
    preset_size,
    read_yaml,
    resolve_base,
    section_from_dict,
)
from ditlaws.errors import UserError
from ditlaws.paths import check_writable
from ditlaws.training.plan import RunPlan, data_geometry, plan_run
from ditlaws.training.record import default_run_id

SIZE_KEYS = ("depth", "width", "heads")


@dataclass
class PlannedRun:
    budget: float
    size: dict[str, int]
    seed: int
    config: RunConfig
    plan: RunPlan
    skip_reason: str | None = None  # why the run is left out of the sweep (None: it runs)
    branch_step: int | None = None  # trunks: the step of its trunk where this run's cooldown starts
    trunk_id: str | None = None  # trunks: the trunk it branches from

    @property
    def run_id(self) -> str:
        return self.plan.run_id

    N = property(lambda self: self.plan.compute.N)
    N_non_embedding = property(lambda self: self.plan.compute.N_non_embedding)
    steps = property(lambda self: self.plan.compute.steps)
    D = property(lambda self: self.plan.compute.D)
    C = property(lambda self: self.plan.compute.C)
    tokens_per_sample = property(lambda self: self.plan.compute.tokens_per_sample)


def load_sweep(path: str | Path, out: str | None = None) -> SweepConfig:
    """Read and validate a sweep YAML; `out` overrides its `out` folder (and the store inside it)."""
    return sweep_from_dict(read_yaml(path), root=Path(path).parent, out=out)


def sweep_from_dict(raw: dict, root: Path | None = None, out: str | None = None) -> SweepConfig:
    """A validated sweep from a mapping; `base_config` is looked up relative to `root` too. The base run config is
    checked once (with the first budget and size), so a bad base key fails before any planning."""
    sweep = section_from_dict(SweepConfig, raw, "sweep")
    if out is not None:
        sweep.out, sweep.store = str(out), None
    sweep.base = resolve_base(sweep, root)
    out_key = "--out" if out is not None else "sweep.out"
    for key, folder in ((out_key, sweep.out_dir), (out_key, sweep.runs_dir), ("sweep.store", sweep.store_dir)):
        check_writable(folder, key, folder=True)
    run_config(sweep, sweep.budgets[0], sweep.size_list[0], sweep.seeds[0])
    return sweep


def run_config(sweep: SweepConfig, budget: float, size: dict, seed: int) -> RunConfig:
    """The full run config of one (budget, size, seed): the base with the size, budget, seed and study set."""
    raw = copy.deepcopy(sweep.base)
    model = {k: v for k, v in (raw.get("model") or {}).items() if k not in SIZE_KEYS}
    raw["model"] = {**model, **size}
    raw["train"] = {**(raw.get("train") or {}), "budget": budget, "seed": seed, "study": sweep.study}
    raw["hub"] = {k: v for k, v in vars(sweep.hub).items()}
    cfg = config_from_dict(raw, source="sweep.base")
    cfg.train.run_id = default_run_id(cfg)
    cfg.train.output_dir = str(sweep.runs_dir / cfg.train.run_id)
    cfg.train.resume = "latest"  # a sweep always continues what it started
    return cfg


def plan_sweep(sweep: SweepConfig) -> list[PlannedRun]:
    """Every (budget, size, seed) run with its plan; runs with too few steps are flagged, not run."""
    first = run_config(sweep, sweep.budgets[0], sweep.size_list[0], sweep.seeds[0])
    geometry = data_geometry(first.data)
    runs = []
    for budget in sweep.budgets:
        for size in sweep.size_list:
            for seed in sweep.seeds:
                cfg = run_config(sweep, budget, size, seed)
                plan = plan_run(cfg, geometry, check_warmup=False)
                reason = None
                if plan.compute.steps < sweep.min_steps:
                    reason = f"{plan.compute.steps} steps < min_steps {sweep.min_steps}"
                elif cfg.train.warmup_steps >= plan.compute.steps:
                    reason = f"{plan.compute.steps} steps <= warmup_steps {cfg.train.warmup_steps}"
                runs.append(PlannedRun(budget=budget, size=dict(size), seed=seed, config=cfg, plan=plan,
                                       skip_reason=reason))
    if sweep.trunks:
        from ditlaws.sweep.trunks import check_trunk_sweep, plan_trunks

        check_trunk_sweep(sweep, first)
        plan_trunks(sweep, [r for r in runs if r.skip_reason is None])
    ids = [r.run_id for r in runs]
    if len(set(ids)) < len(ids):
        dup = next(i for i in ids if ids.count(i) > 1)
        raise UserError(f"sweep: two runs share the id {dup}; budgets must differ in their first 3 digits")
    return runs


def format_plan(runs: list[PlannedRun]) -> str:
    header = f"{'run_id':<40} {'depth':>5} {'width':>5} {'N':>12} {'steps':>8} {'tokens (D)':>14} {'C (6ND)':>10}  note"
    lines = [header, "-" * len(header)]
    for r in runs:
        width = r.config.model.width or preset_size(r.config.model.depth)["width"]
        note = f"skip: {r.skip_reason}" if r.skip_reason else (
            f"branch of {r.trunk_id} at step {r.branch_step:,}" if r.trunk_id else "")
        lines.append(f"{r.run_id:<40} {r.size['depth']:>5} {width:>5} {r.N:>12,} {r.steps:>8,} {r.D:>14,} "
                     f"{r.C:>10.3g}  {note}")
    active = [r for r in runs if r.skip_reason is None]
    lines.append(f"{len(active)} of {len(runs)} runs to train; total {sum(r.C for r in active):.3g} FLOPs (6ND)")
    lines.append(cost_of(active).line())
    return "\n".join(lines)


def cost_of(active: list[PlannedRun]):
    """The sweep's FLOPs as trained (`ditlaws.sweep.trunks.Cost`): trunks + cooldowns, or independent runs."""
    from ditlaws.sweep.trunks import TrunkJob, sweep_cost

    trunks: dict[str, TrunkJob] = {}
    for r in active:
        if r.trunk_id is not None:
            trunks.setdefault(r.trunk_id, TrunkJob(r.config)).branches.append(r)
    return sweep_cost(active, list(trunks.values()))
