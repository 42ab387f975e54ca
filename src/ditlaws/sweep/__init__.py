"""isoFLOP sweeps: a sweep config -> a plan of runs (budgets x sizes x seeds) -> an idempotent runner.

    python -m ditlaws.sweep --config SWEEP.yaml [--out DIR] [--dry-run] [--executor local|subprocess|slurm]
    python -m ditlaws.sweep --config SWEEP.yaml --emit sbatch|list

Each (budget, size, seed) becomes one run of `ditlaws.training.train` whose step count comes from the budget
(C = 6 N D; `ditlaws.training.plan`, shared with training). After training, the run's validation loss is
measured on the fixed validation split and the record (training summary + eval.val_loss) goes into the run store
as `runs/<study>/<run_id>.json`, which is what fit_laws.py reads. The sweep YAML is a `ditlaws.config.SweepConfig`.
Where the runs execute (this process, child processes, a Slurm job array) is `ditlaws.executors`.
"""

from ditlaws.config import SweepConfig
from ditlaws.sweep.job import run_job, sweep_fingerprint
from ditlaws.sweep.plan import PlannedRun, format_plan, load_sweep, plan_sweep, run_config, sweep_from_dict
from ditlaws.sweep.runner import run_sweep

__all__ = ["PlannedRun", "SweepConfig", "format_plan", "load_sweep", "plan_sweep", "run_config", "run_job",
           "run_sweep", "sweep_fingerprint", "sweep_from_dict"]


def main(argv: list[str] | None = None) -> int:
    from ditlaws.sweep.cli import main as cli_main

    return cli_main(argv)
