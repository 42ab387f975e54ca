"""A long-lived sweep worker: one Python process that runs job after job, so a run pays no interpreter start and no
torch / diffusers / datasets / accelerate import (~8 s on 2 CPU cores each).

    python -m ditlaws.sweep worker      # run folders on stdin, one a line; results on stdout

For each folder the worker points its stdout and stderr at `<folder>/sweep_job.log` (appending), runs the job as
`python -m ditlaws.sweep job <folder>` would (a trunk's folder: the trunk and all its branches), and answers one
line `<exit code> <folder>` on the stdout it started with: 0 done, 1 failed (the traceback is in the log), 2 bad
input, 3 a NaN/inf loss, 130 interrupted (the worker then ends). It ends when its stdin closes. The
`subprocess` executor (subprocess_pool.py) keeps one per slot.
"""

from __future__ import annotations

import os
import sys
import traceback
from pathlib import Path

LOG_FILE = "sweep_job.log"


def run_one(run_dir: str, job) -> int:
    """One job (`job(run_dir)`: the `python -m ditlaws.sweep job` command) with fd 1 and 2 in the job's log; its
    exit code as that command would give it."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with open(Path(run_dir) / LOG_FILE, "a") as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        try:
            print(f"$ (worker pid {os.getpid()}) python -m ditlaws.sweep job {run_dir}", flush=True)
            return job(run_dir)
        except Exception:  # what the job command would die of: its traceback goes to the log
            traceback.print_exc()
            return 1
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)


def main(job, argv: list[str] | None = None) -> int:
    """Serve jobs from stdin until it closes; `job(run_dir) -> exit code` runs one (given by `sweep.cli`)."""
    results = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # stray prints between jobs go to the worker's stderr, never into the result channel
    for line in sys.stdin:
        run_dir = line.strip()
        if not run_dir:
            continue
        code = run_one(run_dir, job)
        results.write(f"{code} {run_dir}\n")
        if code == 130:
            return 130
    return 0
