"""The command and environment of one sweep job: plain Python, or `accelerate launch` for several processes.

    python -m ditlaws.sweep job RUN_DIR                                            # one process
    python -m accelerate.commands.launch [--config_file F | --multi_gpu ...] --num_processes P \
        [--num_machines M --machine_rank R --main_process_ip HOST] -m ditlaws.sweep job RUN_DIR

`processes` counts all processes of a run (accelerate's --num_processes), over all its nodes. Without a GPU,
several processes run as a gloo group on the CPU (`ACCELERATE_USE_CPU=true`, `--multi_gpu`), the form
tests/test_train_multiprocess.py checks.
"""

from __future__ import annotations

import os
import shlex
import socket
import sys
from dataclasses import dataclass
from pathlib import Path

from ditlaws.config import ExecutorConfig
from ditlaws.errors import UserError

ACCELERATE_CONFIGS = Path(__file__).resolve().parents[3] / "configs" / "accelerate"  # in a source checkout


@dataclass(frozen=True)
class Launch:
    processes: int = 1
    nodes: int = 1
    use_cpu: bool = True
    accelerate_config: str | None = None  # None: the launcher's flags alone

    @property
    def accelerated(self) -> bool:
        return self.processes > 1 or self.nodes > 1 or self.accelerate_config is not None


def launch_for(cfg: ExecutorConfig, kind: str) -> Launch:
    """How each run of a sweep launches under the executor `kind` (subprocess/local: this machine; slurm: a job)."""
    if kind != "slurm":
        import torch

        return Launch(processes=cfg.processes, use_cpu=not torch.cuda.is_available(),
                      accelerate_config=cfg.accelerate_config)
    nodes = cfg.slurm_nodes
    if nodes > 1 and cfg.processes % nodes:
        raise UserError(f"executor.processes: {cfg.processes} processes do not split over executor.slurm_nodes = "
                        f"{nodes}; processes counts all processes of a run, a multiple of the node count")
    use_cpu = cfg.slurm_gpus_per_node == 0
    config = cfg.accelerate_config
    if config is None and cfg.processes > 1:
        shipped = ACCELERATE_CONFIGS / ("cpu_2proc.yaml" if use_cpu else "multi_node.yaml" if nodes > 1
                                        else "multi_gpu.yaml")
        config = str(shipped) if shipped.is_file() else None
    return Launch(processes=cfg.processes, nodes=nodes, use_cpu=use_cpu, accelerate_config=config)


def job_command(run_dir: str | Path, launch: Launch, machine_rank: str = "0", main_ip: str | None = None,
                port: str | None = None) -> list[str]:
    """The argv of one job. `machine_rank`, `main_ip` and `port` may be shell variables (for a batch script)."""
    job = ["-m", "ditlaws.sweep", "job", str(run_dir)]
    if not launch.accelerated:
        return [sys.executable, *job]
    cmd = [sys.executable, "-m", "accelerate.commands.launch"]
    if launch.accelerate_config:
        cmd += ["--config_file", launch.accelerate_config]
    else:  # the run config's train.mixed_precision decides; these only keep the launcher quiet
        cmd += [*(["--multi_gpu"] if launch.processes > 1 else []), "--mixed_precision", "no",
                "--dynamo_backend", "no"]
    cmd += ["--num_processes", str(launch.processes), "--num_machines", str(launch.nodes)]
    if launch.nodes > 1:
        cmd += ["--machine_rank", machine_rank, "--main_process_ip", main_ip or "127.0.0.1"]
    if port is not None:
        cmd += ["--main_process_port", port]
    return [*cmd, *job]


def job_env(launch: Launch, threads: int | None = None, gpus: str | None = None, base: dict | None = None) -> dict:
    """The child's environment: unbuffered output, the CPU switch, and threads / GPUs unless the user set them."""
    env = dict(os.environ if base is None else base)
    env["PYTHONUNBUFFERED"] = "1"  # the log file follows the run as it goes
    if launch.use_cpu and launch.accelerated:
        env["ACCELERATE_USE_CPU"] = "true"
    if threads is not None and launch.use_cpu:
        env.setdefault("OMP_NUM_THREADS", str(threads))
    if gpus is not None and not launch.use_cpu:
        env.setdefault("CUDA_VISIBLE_DEVICES", gpus)
    return env


def cpu_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def free_port() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return str(sock.getsockname()[1])


def shell_command(argv: list[str], variables: tuple[str, ...] = ()) -> str:
    """argv as one shell line; arguments listed in `variables` (e.g. "$SLURM_NODEID") stay unquoted to expand."""
    return " ".join(f'"{a}"' if a in variables else shlex.quote(a) for a in argv)
