"""Trunks and branches (Hägele et al. 2024): one constant-LR trunk per (size, seed), one WSD cooldown per budget.

With `trunks: true` (and `base.train.schedule: wsd`) a sweep trains, for every (size, seed), one **trunk**: the
base config at constant LR after the same warmup, trained in segments up to its branch points. The run of budget
C_k (S_k steps, `training.plan`) is a **branch**: the trunk's checkpoint at its branch point
p_k = S_k - max(1, round(cooldown_frac·S_k)) (where `schedule.lr_at`'s WSD decay starts), continued with the WSD
cooldown to S_k. Up to p_k the WSD rate is the warmed-up constant rate, the data of step s is batch s of the stream
and every draw comes from (seed, s), so a branch *is* the independent WSD run of its budget, bit for bit on CPU in
fp32 (tests/test_sweep_trunks.py). A branch's record is the independent run's record (same run id, same sweep
fingerprint) plus `trunk: {run_id, branch_step}`.

A trunk's own config has a nominal horizon (`TRUNK_HORIZON` steps at `schedule: constant`, no budget), so its
identity does not depend on the budgets: `sweep next` continues the same trunk to later branch points.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

from ditlaws.config import RunConfig, SweepConfig
from ditlaws.errors import UserError
from ditlaws.store.cost import trained_flops  # noqa: F401  (re-exported: the cost of a study's records)

TRUNK_HORIZON = 1_000_000_000  # a trunk's nominal length: constant LR has no end; it stops at its last branch point
MIN_COOLDOWN_FRAC = 0.1  # the record's loss_last10pct window must lie inside the cooldown (it starts at the branch)


def branch_step(total: int, cooldown_frac: float) -> int:
    """The step where `lr_at(..., "wsd")` starts its decay for a run of `total` steps: the branch point."""
    cooldown = max(1, round(cooldown_frac * total)) if cooldown_frac > 0 else 0
    return total - cooldown


def trunk_id(cfg: RunConfig) -> str:
    """`<family>-d<depth>[-w<width>][-mup<base_width>]-p<patch>-trunk-s<seed>`: one per (size, seed), whatever the
    budgets (named like its branches, `ditlaws.training.record.run_id`)."""
    m, t = cfg.model, cfg.train
    width = f"-w{m.width}" if m.width is not None else ""
    mup = f"-mup{m.base_width}" if getattr(m, "parametrization", "sp") == "mup" else ""
    return f"{m.family}-d{m.depth}{width}{mup}-p{m.patch_size}-trunk-s{t.seed}"


def check_trunk_sweep(sweep: SweepConfig, example: RunConfig) -> None:
    """`trunks: true` needs the WSD schedule (a branch is its cooldown) and a cooldown of at least 10 % of a run."""
    t = example.train
    if t.schedule != "wsd":
        raise UserError(f"sweep.trunks: base.train.schedule must be wsd (got {t.schedule!r}); a branch is the WSD "
                        "cooldown of its budget")
    if t.cooldown_frac < MIN_COOLDOWN_FRAC:
        raise UserError(f"sweep.trunks: base.train.cooldown_frac must be >= {MIN_COOLDOWN_FRAC} (got "
                        f"{t.cooldown_frac}); the record's last-10 % loss window must lie inside the cooldown")


def trunk_config(branch: RunConfig, runs_dir) -> RunConfig:
    """The trunk of a branch's (size, seed): its config at constant LR with the nominal horizon."""
    from ditlaws.config import config_from_dict

    raw = copy.deepcopy(branch.to_dict())
    raw["train"].update(budget=None, steps=TRUNK_HORIZON, schedule="constant", run_id=None)
    cfg = config_from_dict(raw, source="sweep trunk")
    cfg.train.run_id = trunk_id(cfg)
    cfg.train.output_dir = str(runs_dir / cfg.train.run_id)
    cfg.train.resume = "latest"
    cfg.hub.org = None  # a trunk is no run of the study: only its branches' records are stored and pushed
    return cfg


@dataclass
class TrunkJob:
    """One trunk and its branches: the unit an executor runs (`python -m ditlaws.sweep job <trunk folder>`)."""

    config: RunConfig
    branches: list = field(default_factory=list)  # PlannedRun, ordered by branch step

    @property
    def run_id(self) -> str:
        return self.config.train.run_id

    @property
    def steps(self) -> int:  # what the trunk itself trains: up to its last branch point
        return max((b.branch_step for b in self.branches), default=0)

    def branch_steps(self) -> list[int]:
        return sorted({b.branch_step for b in self.branches})


def plan_trunks(sweep: SweepConfig, runs: list) -> list[TrunkJob]:
    """Group the sweep's (unskipped) runs into trunks by (size, seed); set each run's branch point."""
    trunks: dict[str, TrunkJob] = {}
    for run in runs:
        cfg = trunk_config(run.config, sweep.runs_dir)
        run.branch_step = branch_step(run.steps, run.config.train.cooldown_frac)
        run.trunk_id = cfg.train.run_id
        trunks.setdefault(cfg.train.run_id, TrunkJob(cfg)).branches.append(run)
    for job in trunks.values():
        job.branches.sort(key=lambda r: (r.branch_step, r.steps))
    return list(trunks.values())


@dataclass(frozen=True)
class Cost:
    """A sweep's training FLOPs (6ND) as trunks + cooldowns, beside what independent runs would cost."""

    independent: float
    trunks: float
    cooldowns: float
    points: int  # isoFLOP points (runs)
    budgets: int

    @property
    def trained(self) -> float:
        return self.trunks + self.cooldowns

    @property
    def ratio(self) -> float:
        return self.trained / self.independent if self.independent else float("nan")

    def line(self) -> str:
        return (f"trained {self.trained:.3g} FLOPs (6ND): trunks {self.trunks:.3g} + cooldowns {self.cooldowns:.3g} "
                f"= {100 * self.ratio:.0f} % of the {self.independent:.3g} that independent runs would cost; "
                f"{self.points} isoFLOP points over {self.budgets} budgets")

    def record(self) -> dict:
        return {"trained_flops": self.trained, "trunk_flops": self.trunks, "cooldown_flops": self.cooldowns,
                "independent_flops": self.independent, "isoflop_points": self.points, "budgets": self.budgets}


def sweep_cost(runs: list, trunks: list[TrunkJob] | None) -> Cost:
    """FLOPs as trained: without trunks every run in full; with them each trunk to its last branch point plus every
    branch's cooldown (flops per step from each run's own plan)."""
    independent = sum(r.C for r in runs)
    budgets = len({r.budget for r in runs})
    if not trunks:
        return Cost(independent, 0.0, independent, len(runs), budgets)
    trunk_flops = cooldown = 0.0
    for job in trunks:
        per_step = job.branches[0].C / job.branches[0].steps if job.branches else 0.0
        trunk_flops += per_step * job.steps
        cooldown += sum(b.C / b.steps * (b.steps - b.branch_step) for b in job.branches)
    return Cost(independent, trunk_flops, cooldown, len(runs), budgets)


def trunk_jobs(sweep: SweepConfig, pending: list) -> list[TrunkJob]:
    """The trunk jobs of the pending runs (their branch job files already written): each trunk's job file
    (`<trunk folder>/sweep_job.json`, kind `trunk`) lists its pending branches in branch-point order."""
    import json
    from pathlib import Path

    from ditlaws.jsonio import write_json_atomic
    from ditlaws.sweep.job import JOB_FILE
    from ditlaws.sweep.trunk_job import TRUNK_KIND

    jobs = plan_trunks(sweep, pending)
    for job in jobs:
        spec = {"kind": TRUNK_KIND, "config": json.loads(json.dumps(job.config.to_dict(), default=list)),
                "store": str(sweep.store_dir), "study": sweep.study,
                "branches": [{"run_id": b.run_id, "run_dir": str(Path(b.config.train.output_dir).resolve()),
                              "branch_step": b.branch_step} for b in job.branches]}
        write_json_atomic(Path(job.config.train.output_dir) / JOB_FILE, spec)
    return jobs
