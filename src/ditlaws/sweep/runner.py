"""The sweep runner: plan -> skip what the store already holds -> run the rest -> generation metrics.

Idempotent and restartable: a run in the store with the same fingerprint is skipped, an interrupted one resumes
from its latest checkpoint, and a run whose configuration changed is an error, never a silent overwrite. The
runs execute where `sweep.executor.kind` says (`ditlaws.executors`): here, one after another (`local`), as child
processes (`subprocess`), or as a Slurm job array (`slurm`); `emit_jobs` writes job files instead of running.
"""

from __future__ import annotations

import time
from pathlib import Path

from ditlaws.config import SweepConfig
from ditlaws.executors.progress import Outcome, Progress, RunsFailed, has_checkpoint, loss_text
from ditlaws.locks import folder_lock
from ditlaws.publish import end_of_study
from ditlaws.sweep.job import run_job, stored_record, sweep_fingerprint, write_job
from ditlaws.sweep.plan import PlannedRun, cost_of, plan_sweep


def run_sweep(sweep: SweepConfig, log=print, cluster: str | None = None) -> list[dict]:
    """Train and evaluate every planned run that is not already in the store; returns all the sweep's records.

    `cluster="local"` runs the slurm executor on submitit's LocalExecutor (for tests). Runs that fail under the
    subprocess or slurm executor raise `RunsFailed` after the others are collected."""
    from ditlaws.store import LocalStore

    store = LocalStore(sweep.store_dir)
    started = time.perf_counter()
    runs, records, todo = pending_runs(sweep, store, log)
    progress = Progress(sweep, runs, lookup(sweep, store), log)
    cost = cost_of(runs)  # trunks + cooldowns vs independent runs (ditlaws.sweep.trunks)
    if sweep.executor.kind == "local":
        outcome = run_in_process(todo, progress)
    else:
        from ditlaws.executors import run_elsewhere

        outcome = run_elsewhere(sweep, todo, progress, cluster=cluster)
    records.update(outcome.records)
    if outcome.busy:
        log(f"{len(outcome.busy)} run(s) were in progress in another process; run the sweep again when it is done "
            "to collect them")
    if outcome.failures:
        raise RunsFailed(outcome.failures)
    ordered = [records[r.run_id] for r in runs if r.run_id in records]
    if sweep.eval.generation:
        from ditlaws.sweep.generation import evaluate_generation

        ordered = evaluate_generation(sweep, store, ordered, log=log)
    end_of_study(store.root, sweep.hub, sweep.study, [r["run_id"] for r in ordered], log=log)
    log(f"sweep {sweep.study}: {len(ordered)} runs in {store.root} ({time.perf_counter() - started:.0f} s); "
        f"{cost.line()}")
    return ordered


def lookup(sweep: SweepConfig, store):
    """A planned run -> its record in the store with the sweep's fingerprint (None: not done); the executors'
    test of "done"."""
    return lambda run: stored_record(store, sweep.study, run.run_id, sweep_fingerprint(run.config, sweep.eval))


def pending_runs(sweep: SweepConfig, store, log=print) -> tuple[list[PlannedRun], dict[str, dict], list[PlannedRun]]:
    """The sweep's runs, the records the store already holds, and the runs still to do (their job files written)."""
    runs = [r for r in plan_sweep(sweep) if r.skip_reason is None]
    progress = Progress(sweep, runs, lookup(sweep, store), log)
    records: dict[str, dict] = {}
    todo: list[PlannedRun] = []
    for run in runs:
        record = progress.record(run)
        if record is not None:
            log(f"{progress.prefix(run)}  in store, skipped  val_loss {loss_text(record)}")
            records[run.run_id] = record
        else:
            todo.append(run)
    for run in todo:
        write_job(run.config, sweep, run.plan)
    if sweep.trunks:  # the jobs are the trunks, each with its pending branches
        from ditlaws.sweep.trunks import trunk_jobs

        todo = trunk_jobs(sweep, todo)
    return runs, records, todo


def emit_jobs(sweep: SweepConfig, what: str, log=print) -> Path | None:
    """Write the job files of the pending runs and an sbatch script (`sbatch`) or command list (`list`); returns its
    path (None when every run is in the store)."""
    from ditlaws.executors.emit import emit
    from ditlaws.store import LocalStore

    _, records, todo = pending_runs(sweep, LocalStore(sweep.store_dir), log)
    if not todo:
        log(f"sweep {sweep.study}: all {len(records)} runs are in the store; nothing to emit")
        return None
    path = emit(sweep, todo, what)
    how = f"sbatch {path}" if what == "sbatch" else f"run each line of {path}"
    log(f"{len(todo)} pending run(s) ({len(records)} in the store): {how}; then run this sweep command again "
        "(any executor) to collect them")
    return path


def run_in_process(todo: list[PlannedRun], progress: Progress) -> Outcome:
    """The `local` executor: each run in this process, one after another."""
    outcome, log = Outcome(), progress.log
    for run in todo:
        lock = folder_lock(run.config.train.output_dir, label="sweep runner")
        if not lock.acquire(blocking=False):
            holder = lock.holder()
            log(f"{progress.prefix(run)}  in progress elsewhere ({holder.describe() if holder else 'locked'}), "
                "skipped")
            outcome.busy.append(run.run_id)
            continue
        try:
            done = progress.records_of(run)
            if done is not None:  # finished by another runner while this one was busy
                log(f"{progress.prefix(run)}  in store (finished by another runner), skipped")
                outcome.collect(run, done)
                continue
            resumed = has_checkpoint(run)
            t0 = time.perf_counter()
            if getattr(run, "branches", None) is not None:  # a trunk and its branches (ditlaws.sweep.trunk_job)
                from ditlaws.sweep.trunk_job import run_trunk_job

                records = run_trunk_job(run.config.train.output_dir, log=log, lock=lock, wait=False)
            else:
                records = {run.run_id: run_job(run.config.train.output_dir, log=log, lock=lock, wait=False)}
            outcome.collect(run, records)
        finally:
            lock.release()
        log(f"{progress.prefix(run)}  {'resumed, ' if resumed else ''}trained + evaluated in "
            f"{time.perf_counter() - t0:.1f} s  val_loss {', '.join(loss_text(r) for r in records.values())}")
    return outcome
