"""Job files for users without submitit: a plain `sbatch --array` script, or a list of commands (one per run).

    python -m ditlaws.sweep --config S.yaml --emit sbatch    # <out>/jobs/sweep.sbatch; then: sbatch <that file>
    python -m ditlaws.sweep --config S.yaml --emit list      # <out>/jobs/commands.txt; one shell line per run

Array task i runs the i-th pending run's `python -m ditlaws.sweep job RUN_DIR` (chosen by $SLURM_ARRAY_TASK_ID),
its output in `<out>/jobs/sbatch/<array job>_<task>.out`. Each job writes its record into the store, so a later
`python -m ditlaws.sweep --config S.yaml` (any executor) finds the finished runs there and runs only the rest.
"""

from __future__ import annotations

import os
import shlex
from pathlib import Path
from typing import TYPE_CHECKING

from ditlaws.config import SweepConfig
from ditlaws.executors.launch import Launch, job_command, launch_for, shell_command
from ditlaws.executors.slurm_options import sbatch_directives
from ditlaws.jsonio import write_text_atomic

if TYPE_CHECKING:
    from ditlaws.executors.progress import PlannedRun

NODE_VARS = ('$SLURM_NODEID', '$MASTER_ADDR', '$MASTER_PORT')


def emit(sweep: SweepConfig, pending: list[PlannedRun], what: str) -> Path:
    """Write the sbatch script or the command list of the pending runs; returns its path."""
    jobs = Path(sweep.out_dir).resolve() / "jobs"
    if what == "sbatch":
        path, text = jobs / "sweep.sbatch", sbatch_script(sweep, pending, launch_for(sweep.executor, "slurm"), jobs)
    else:
        kind = "slurm" if sweep.executor.kind == "slurm" else "subprocess"
        path, text = jobs / "commands.txt", command_list(pending, launch_for(sweep.executor, kind))
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, text)
    if what == "sbatch":
        path.chmod(0o755)
    return path


def run_dir_of(run: PlannedRun) -> str:
    return str(Path(run.config.train.output_dir).resolve())


def command_list(pending: list[PlannedRun], launch: Launch) -> str:
    cwd, lines = shlex.quote(os.getcwd()), []
    for i, run in enumerate(pending):
        port = str(29500 + i) if launch.processes > 1 else None  # lines may run side by side
        env = "ACCELERATE_USE_CPU=true " if launch.use_cpu and launch.accelerated else ""
        lines.append(f"cd {cwd} && {env}{shell_command(job_command(run_dir_of(run), launch, port=port))}")
    return "".join(line + "\n" for line in lines)


def sbatch_script(sweep: SweepConfig, pending: list[PlannedRun], launch: Launch, jobs: Path) -> str:
    lines = ["#!/bin/bash",
             f"# ditlaws sweep {sweep.study}: {len(pending)} pending run(s), one array task each. Submit: sbatch "
             f"{jobs / 'sweep.sbatch'}",
             *sbatch_directives(sweep),
             f"#SBATCH --array=0-{len(pending) - 1}",
             f"#SBATCH --output={jobs / 'sbatch'}/%A_%a.out",
             "set -euo pipefail",
             f"cd {shlex.quote(os.getcwd())}",
             "export PYTHONUNBUFFERED=1"]
    if launch.use_cpu and launch.accelerated:
        lines.append("export ACCELERATE_USE_CPU=true")
    if launch.processes > 1 or launch.nodes > 1:
        lines.append("export MASTER_PORT=$((20000 + (${SLURM_ARRAY_JOB_ID:-0} + SLURM_ARRAY_TASK_ID) % 20000))")
    if launch.nodes > 1:
        lines.append('export MASTER_ADDR=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)')
    lines.append('case "${SLURM_ARRAY_TASK_ID:?submit with sbatch, or set SLURM_ARRAY_TASK_ID}" in')
    for i, run in enumerate(pending):
        lines.append(f"  {i}) {task_command(run, launch)} ;;  # {run.run_id}")
    lines += ['  *) echo "no run for array task $SLURM_ARRAY_TASK_ID" >&2; exit 2 ;;', "esac"]
    return "".join(line + "\n" for line in lines)


def task_command(run: PlannedRun, launch: Launch) -> str:
    if launch.nodes == 1:
        port = "$MASTER_PORT" if launch.processes > 1 else None
        return "exec " + shell_command(job_command(run_dir_of(run), launch, port=port), variables=NODE_VARS)
    inner = shell_command(job_command(run_dir_of(run), launch, machine_rank="$SLURM_NODEID", main_ip="$MASTER_ADDR",
                                      port="$MASTER_PORT"), variables=NODE_VARS)
    return f"exec srun --nodes={launch.nodes} --ntasks-per-node=1 bash -c {shlex.quote('exec ' + inner)}"
