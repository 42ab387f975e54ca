"""The sweep YAML's `executor.slurm_*` options as submitit parameters and as `#SBATCH` directives (one mapping)."""

from __future__ import annotations

from ditlaws.config import SweepConfig
from ditlaws.errors import UserError


def additional(sweep: SweepConfig) -> dict[str, str]:
    """`slurm_additional: ["qos=high", "constraint=a100"]` -> {"qos": "high", "constraint": "a100"}."""
    extra = {}
    for i, item in enumerate(sweep.executor.slurm_additional):
        key, sep, value = item.removeprefix("--").partition("=")
        if not sep or not key.strip():
            raise UserError(f"executor.slurm_additional[{i}]: {item!r} is not key=value (an sbatch option such as "
                            "'qos=high')")
        extra[key.strip().replace("-", "_")] = value.strip()
    return extra


def submitit_parameters(sweep: SweepConfig, cluster: str) -> dict:
    """Parameters for submitit's AutoExecutor.update_parameters (shared names, and slurm_ ones on Slurm)."""
    ex = sweep.executor
    params = {"name": f"ditlaws-{sweep.study}", "timeout_min": ex.slurm_time_min, "nodes": ex.slurm_nodes,
              "tasks_per_node": 1, "gpus_per_node": ex.slurm_gpus_per_node, "cpus_per_task": ex.slurm_cpus_per_task,
              "mem_gb": ex.slurm_mem_gb}
    if cluster == "slurm":
        params.update(slurm_partition=ex.slurm_partition, slurm_account=ex.slurm_account,
                      slurm_additional_parameters=additional(sweep) or None)
    return {k: v for k, v in params.items() if v is not None}


def sbatch_directives(sweep: SweepConfig) -> list[str]:
    """The `#SBATCH` lines of one array task, without --array and --output."""
    ex = sweep.executor
    hours, minutes = divmod(ex.slurm_time_min, 60)
    options = {"job-name": f"ditlaws-{sweep.study}", "partition": ex.slurm_partition, "account": ex.slurm_account,
               "time": f"{hours:02d}:{minutes:02d}:00", "nodes": str(ex.slurm_nodes), "ntasks-per-node": "1",
               "gpus-per-node": str(ex.slurm_gpus_per_node) if ex.slurm_gpus_per_node else None,
               "cpus-per-task": ex.slurm_cpus_per_task, "mem": f"{ex.slurm_mem_gb}G" if ex.slurm_mem_gb else None}
    options.update({k.replace("_", "-"): v for k, v in additional(sweep).items()})
    return [f"#SBATCH --{k}={v}" for k, v in options.items() if v is not None]
