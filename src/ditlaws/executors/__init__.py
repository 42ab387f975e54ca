"""Where a sweep's pending runs execute: in the runner's process, as child processes, or as Slurm jobs.

    local        ditlaws.sweep.runner trains each run in its own process, one after another
    subprocess   subprocess_pool: one long-lived worker per slot (worker.py) running job after job,
                 executor.max_parallel at once (`python -m ditlaws.sweep job RUN_DIR` children for multi-process runs)
    slurm        submitit_array: a job array through submitit's AutoExecutor; job ids kept in <out>/jobs.json
    --emit       emit: an sbatch --array script or a command list, for users without submitit

Every executor launches the same job (launch.py), and a run is done when its record is in the store (progress.py).
With `trunks: true` a job is a trunk with its branches (ditlaws.sweep.trunk_job), done when all its branches are.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ditlaws.config import SweepConfig
from ditlaws.executors.progress import Failure, Outcome, Progress, RunsFailed

if TYPE_CHECKING:
    from ditlaws.executors.progress import PlannedRun

KINDS = ("local", "subprocess", "slurm")
EMITS = ("sbatch", "list")


def run_elsewhere(sweep: SweepConfig, pending: list[PlannedRun], progress: Progress,
                  cluster: str | None = None) -> Outcome:
    """Run the pending runs with the sweep's executor (`subprocess` or `slurm`); `cluster="local"` runs the slurm
    path on submitit's LocalExecutor (tests)."""
    if sweep.executor.kind == "subprocess":
        from ditlaws.executors.subprocess_pool import run_subprocesses

        return run_subprocesses(sweep, pending, progress)
    if sweep.executor.kind == "slurm":
        from ditlaws.executors.submitit_array import run_submitit

        return run_submitit(sweep, pending, progress, cluster=cluster)
    raise ValueError(f"executor {sweep.executor.kind!r} does not run elsewhere")


__all__ = ["EMITS", "KINDS", "Failure", "Outcome", "Progress", "RunsFailed", "run_elsewhere"]
