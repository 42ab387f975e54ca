"""The `slurm` executor: one job per pending run, submitted as one job array through submitit's AutoExecutor.

The runner records every job in `<out>/jobs.json` (run id -> job id, folder, logs, state) and waits for the jobs;
each job writes its run's record into the store, where the runner collects it. Restartable: a run whose job is
still queued or running is waited for, not resubmitted; a finished run is found in the store; a job that ended
without a record is reported with its log and submitted again. Tests pass `cluster="local"` (submitit's
LocalExecutor: real processes and job folders, no Slurm).
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ditlaws.config import SweepConfig
from ditlaws.errors import UserError
from ditlaws.executors.launch import launch_for
from ditlaws.executors.ledger import JobEntry, ledger_path, read_ledger, write_ledger
from ditlaws.executors.progress import Outcome, Progress, has_checkpoint, held_elsewhere
from ditlaws.executors.slurm_options import submitit_parameters
from ditlaws.executors.task import run_in_job
from ditlaws.locks import alive, file_lock, process_start

if TYPE_CHECKING:
    from ditlaws.executors.progress import PlannedRun


@dataclass
class Watched:
    run: PlannedRun
    job: object  # a submitit Job
    entry: JobEntry
    resumed: bool


def run_submitit(sweep: SweepConfig, pending: list[PlannedRun], progress: Progress, cluster: str | None = None,
                 poll_s: float | None = None) -> Outcome:
    """Submit (or re-attach to) a job per pending run, wait for all of them, collect their records."""
    cluster = cluster or "slurm"
    if cluster == "slurm" and shutil.which("sbatch") is None:
        raise UserError("executor.kind: slurm needs Slurm's sbatch on this machine; use --executor subprocess, or "
                        "--emit sbatch to write a batch script to submit elsewhere")
    launch = launch_for(sweep.executor, "slurm")
    path = ledger_path(sweep.out_dir)
    outcome, watched = Outcome(), {}
    with file_lock(path, label="sweep runner (submitting jobs)", timeout=120):
        entries = read_ledger(path)
        to_submit = []
        for run in pending:
            entry = entries.get(run.run_id)
            if entry is not None and entry.state == "submitted":
                job = reattach(entry)
                if not ended(job, entry):
                    progress.log(f"{progress.prefix(run)}  job {entry.job_id} {state_of(job, entry)}, not "
                                 "resubmitted")
                    watched[run.run_id] = Watched(run, job, entry, has_checkpoint(run))
                    continue
                records = progress.records_of(run)
                if records is not None:  # finished while no runner was watching
                    entry.state = "completed"
                    outcome.collect(run, records)
                    progress.log(f"{progress.prefix(run)}  job {entry.job_id} finished, collected")
                    continue
                entry.state = "failed"
            if entry is not None and entry.state == "failed":
                progress.log(f"{progress.prefix(run)}  job {entry.job_id} ended without a record (log "
                             f"{entry.stderr}); submitting it again")
            holder = held_elsewhere(run)
            if holder is not None:
                progress.log(f"{progress.prefix(run)}  in progress elsewhere ({holder.describe()}), skipped")
                outcome.busy.append(run.run_id)
                continue
            to_submit.append(run)
        if to_submit:
            for run, job, entry in submit(sweep, to_submit, launch, cluster):
                entries[run.run_id] = entry
                watched[run.run_id] = Watched(run, job, entry, has_checkpoint(run))
            ids = ", ".join(entries[r.run_id].job_id for r in to_submit)
            progress.log(f"submitted {len(to_submit)} job(s) ({cluster}: {ids}); job ids in {path}")
        write_ledger(path, entries)
    wait(watched, outcome, progress, path, poll_s if poll_s is not None else 0.5 if cluster == "local" else 15.0)
    return outcome


def submit(sweep: SweepConfig, runs: list[PlannedRun], launch, cluster: str) -> list[tuple]:
    import submitit

    executor = submitit.AutoExecutor(folder=Path(sweep.out_dir).resolve() / "jobs" / "%j", cluster=cluster)
    executor.update_parameters(**submitit_parameters(sweep, cluster))
    cwd = os.getcwd()
    with executor.batch():
        jobs = [executor.submit(run_in_job, str(Path(r.config.train.output_dir).resolve()), launch, cwd)
                for r in runs]
    submitted = []
    for run, job in zip(runs, jobs, strict=True):
        entry = JobEntry(job_id=str(job.job_id), cluster=cluster, folder=str(job.paths.folder),
                         stdout=str(job.paths.stdout), stderr=str(job.paths.stderr), submitted=time.time(),
                         pid_start=process_start(int(job.job_id)) if cluster == "local" else None)
        submitted.append((run, job, entry))
    return submitted


def reattach(entry: JobEntry):
    """A submitit Job for a ledger entry written by an earlier runner."""
    if entry.cluster == "local":
        from submitit.local.local import LocalJob

        return LocalJob(entry.folder, entry.job_id)
    import submitit

    return submitit.SlurmJob(entry.folder, entry.job_id)


def ended(job, entry: JobEntry) -> bool:
    if entry.cluster == "local" and getattr(job, "_process", None) is None:  # re-attached: is the pid still it?
        return not local_job_running(int(entry.job_id), entry.pid_start)
    return job.done()


def local_job_running(pid: int, start: str | None) -> bool:
    """A local job's process exists, is the one that was submitted, and has not exited (a zombie has)."""
    if not alive(pid, start):
        return False
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().decode(errors="replace").rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True  # no /proc: trust the signal check


def state_of(job, entry: JobEntry) -> str:
    if entry.cluster == "local":
        return "ended" if ended(job, entry) else "running"
    return str(job.state).lower()


def wait(watched: dict[str, Watched], outcome: Outcome, progress: Progress, path: Path, poll_s: float) -> None:
    try:
        while watched:
            time.sleep(poll_s)
            done = [w for w in watched.values() if ended(w.job, w.entry)]
            for w in done:
                del watched[w.run.run_id]
                state = state_of(w.job, w.entry)
                progress.finished(w.run, outcome, time.time() - w.entry.submitted, w.resumed,
                                  f"job {w.entry.job_id} {state}", Path(w.entry.stderr), since_submission=True)
                w.entry.state = "completed" if w.run.run_id in outcome.done else "failed"
            if done:
                with file_lock(path, label="sweep runner (job states)", timeout=120):
                    entries = read_ledger(path)
                    entries.update({w.run.run_id: w.entry for w in done})
                    write_ledger(path, entries)
    except KeyboardInterrupt:
        progress.log(f"the submitted jobs keep running ({path}); run the same command again to collect them")
        raise
