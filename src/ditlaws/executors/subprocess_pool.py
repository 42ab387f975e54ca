"""The `subprocess` executor: the pending jobs on `executor.max_parallel` child processes at once.

With one process per run, each slot keeps one long-lived worker (`python -m ditlaws.sweep worker`, worker.py) that
runs job after job: no interpreter start and no torch import per run. A run that uses several processes is one
child per run instead (`python -m ditlaws.sweep job RUN_DIR` under `accelerate launch`). Either way a job's stdout
and stderr go to `<run folder>/sweep_job.log` (a trunk's folder for a trunk job). On a CPU, parallel children share
the cores: OMP_NUM_THREADS = max(1, cores // (max_parallel·processes)) unless set; on GPUs each slot gets its own
devices (CUDA_VISIBLE_DEVICES) when there are enough and the variable is not set.
"""

from __future__ import annotations

import queue as queues
import signal
import subprocess
import sys
import threading
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
    if not launch.accelerated:
        return run_on_workers(sweep, pending, progress, launch)
    queue, children, free_slots, outcome = deque(pending), [], list(range(parallel)), Outcome()
    try:
        while queue or children:
            while queue and free_slots:
                run = queue.popleft()
                if busy_elsewhere(run, progress, outcome):
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


# ---------------------------------------------------------------------------------------------------------------
# Long-lived workers (one process per run)


def worker_command() -> list[str]:
    return [sys.executable, "-m", "ditlaws.sweep", "worker"]


@dataclass
class Worker:
    slot: int
    process: subprocess.Popen
    log_file: object  # the worker's own stderr (between jobs): <out>/jobs/worker_<slot>.log
    job: tuple | None = None  # (run, started, resumed) while it runs one


def start_worker(slot: int, launch: Launch, parallel: int, jobs_dir: Path, events: queues.Queue) -> Worker:
    jobs_dir.mkdir(parents=True, exist_ok=True)
    log_file = open(jobs_dir / f"worker_{slot}.log", "a")  # noqa: SIM115 (closed when the worker ends)
    process = subprocess.Popen(worker_command(), env=child_env(launch, slot, parallel), stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, stderr=log_file, text=True, bufsize=1)

    def read() -> None:  # the result channel: "<exit code> <run folder>" per job, then EOF
        for line in process.stdout:
            events.put((slot, line))
        events.put((slot, None))

    threading.Thread(target=read, daemon=True).start()
    return Worker(slot, process, log_file)


def run_on_workers(sweep: SweepConfig, pending: list[PlannedRun], progress: Progress, launch: Launch) -> Outcome:
    """`pending` on one long-lived worker per slot (started on demand, restarted if one dies)."""
    parallel = sweep.executor.max_parallel
    jobs_dir = Path(sweep.out_dir) / "jobs"
    queue, outcome, events = deque(pending), Outcome(), queues.Queue()
    workers: dict[int, Worker] = {}
    try:
        while queue or any(w.job for w in workers.values()):
            for slot in range(parallel):
                if not queue:
                    break
                worker = workers.get(slot)
                if worker is not None and (worker.job is not None or worker.process.poll() is not None):
                    continue
                run = queue.popleft()
                if busy_elsewhere(run, progress, outcome):
                    continue
                if worker is None:
                    worker = workers[slot] = start_worker(slot, launch, parallel, jobs_dir, events)
                worker.job = (run, time.perf_counter(), has_checkpoint(run))
                worker.process.stdin.write(f"{Path(run.config.train.output_dir).resolve()}\n")
                worker.process.stdin.flush()
                if parallel > 1:
                    progress.log(f"{progress.prefix(run)}  started (pid {worker.process.pid}, worker {slot}, log "
                                 f"{Path(run.config.train.output_dir) / LOG_FILE})")
            try:
                slot, line = events.get(timeout=POLL_S)
            except queues.Empty:
                continue
            worker = workers[slot]
            if line is None:  # the worker died (killed, out of memory): its job failed, the slot starts afresh
                worker.process.wait()
                worker.log_file.close()
                del workers[slot]
                reason = f"worker exit {worker.process.returncode}"
            else:
                reason = f"exit {line.split()[0]}"
            if worker.job is not None:
                run, started, resumed = worker.job
                worker.job = None
                progress.finished(run, outcome, time.perf_counter() - started, resumed, reason,
                                  Path(run.config.train.output_dir) / LOG_FILE)
    except KeyboardInterrupt:
        stop(list(workers.values()))
        raise
    for worker in workers.values():  # no more jobs: each worker ends when its stdin closes
        worker.process.stdin.close()
    wait_all(list(workers.values()), 30.0)
    for worker in workers.values():
        if worker.process.poll() is None:
            worker.process.kill()
            worker.process.wait()
        worker.log_file.close()
    return outcome


def busy_elsewhere(run, progress: Progress, outcome: Outcome) -> bool:
    """A run another live runner is training: said, counted as busy, and left to it."""
    holder = held_elsewhere(run)
    if holder is not None:
        progress.log(f"{progress.prefix(run)}  in progress elsewhere ({holder.describe()}), skipped")
        outcome.busy.append(run.run_id)
    return holder is not None
