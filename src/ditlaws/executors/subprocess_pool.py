"""The `subprocess` executor: each pending run as a child process, up to `executor.max_parallel` at once.

Each child runs `python -m ditlaws.sweep job RUN_DIR` (under `accelerate launch` for several processes per run)
with its stdout and stderr in `<run folder>/sweep_job.log`. On a CPU, parallel children share the cores:
OMP_NUM_THREADS = max(1, cores // (max_parallel·processes)) unless set; on GPUs each slot gets its own devices
(CUDA_VISIBLE_DEVICES) when there are enough and the variable is not set.
"""

from __future__ import annotations

import signal
import subprocess
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ditlaws.config import SweepConfig
from ditlaws.executors.launch import Launch, cpu_cores, free_port, job_command, job_env, launch_for
from ditlaws.executors.progress import Outcome, Progress, has_checkpoint, held_elsewhere

if TYPE_CHECKING:
    from ditlaws.executors.progress import PlannedRun

LOG_FILE = "sweep_job.log"
POLL_S = 0.2


@dataclass
class Child:
    run: PlannedRun
    process: subprocess.Popen
    slot: int
    started: float
    resumed: bool
    log_path: Path
    log_file: object


def run_subprocesses(sweep: SweepConfig, pending: list[PlannedRun], progress: Progress) -> Outcome:
    """Run `pending` as child processes; returns what they put in the store, what failed and what was busy."""
    parallel = sweep.executor.max_parallel
    launch = launch_for(sweep.executor, "subprocess")
    queue, children, free_slots, outcome = deque(pending), [], list(range(parallel)), Outcome()
    try:
        while queue or children:
            while queue and free_slots:
                run = queue.popleft()
                holder = held_elsewhere(run)
                if holder is not None:
                    progress.log(f"{progress.prefix(run)}  in progress elsewhere ({holder.describe()}), skipped")
                    outcome.busy.append(run.run_id)
                    continue
                children.append(start(run, launch, free_slots.pop(0), parallel, progress))
            time.sleep(POLL_S)
            for child in [c for c in children if c.process.poll() is not None]:
                children.remove(child)
                free_slots.append(child.slot)
                child.log_file.close()
                progress.finished(child.run, outcome, time.perf_counter() - child.started, child.resumed,
                                  f"exit {child.process.returncode}", child.log_path)
    except KeyboardInterrupt:
        stop(children)
        raise
    return outcome


def start(run: PlannedRun, launch: Launch, slot: int, parallel: int, progress: Progress) -> Child:
    run_dir = Path(run.config.train.output_dir)
    log_path = run_dir / LOG_FILE
    port = free_port() if launch.processes > 1 else None
    cmd = job_command(run_dir, launch, port=port)
    resumed = has_checkpoint(run)
    log_file = open(log_path, "a")  # noqa: SIM115 (closed when the child ends)
    log_file.write(f"$ {' '.join(cmd)}\n")
    log_file.flush()
    process = subprocess.Popen(cmd, env=child_env(launch, slot, parallel), stdout=log_file,
                               stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    if parallel > 1:
        progress.log(f"{progress.prefix(run)}  started (pid {process.pid}, log {log_path})")
    return Child(run, process, slot, time.perf_counter(), resumed, log_path, log_file)


def child_env(launch: Launch, slot: int, parallel: int) -> dict:
    per_run = launch.processes
    threads = max(1, cpu_cores() // (parallel * per_run)) if parallel * per_run > 1 else None
    gpus = None
    if not launch.use_cpu and parallel > 1:
        import torch

        if torch.cuda.device_count() >= parallel * per_run:
            gpus = ",".join(str(slot * per_run + k) for k in range(per_run))
    return job_env(launch, threads=threads, gpus=gpus)


def stop(children: list[Child]) -> None:
    """On Ctrl-C: the children got the terminal's SIGINT too; give them a moment, interrupt those still going (the
    runner alone was interrupted), then kill what is left. An interrupted run resumes from its checkpoint."""
    wait_all(children, 5.0)
    for child in children:
        if child.process.poll() is None:
            child.process.send_signal(signal.SIGINT)
    wait_all(children, 30.0)
    for child in children:
        if child.process.poll() is None:
            child.process.kill()
            child.process.wait()
        child.log_file.close()


def wait_all(children: list[Child], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    for child in children:
        try:
            child.process.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            pass
