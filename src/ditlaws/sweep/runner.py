"""The sweep runner: plan -> skip what the store already holds -> run the rest -> generation metrics.

Idempotent and restartable: a run in the store with the same fingerprint is skipped, an interrupted one resumes
from its latest checkpoint, and a run whose configuration changed is an error, never a silent overwrite.
"""

from __future__ import annotations

import time
from pathlib import Path

from ditlaws.config import SweepConfig
from ditlaws.locks import folder_lock
from ditlaws.sweep.job import run_job, stored_record, sweep_fingerprint, write_job
from ditlaws.sweep.plan import PlannedRun, plan_sweep


def run_sweep(sweep: SweepConfig, log=print) -> list[dict]:
    """Train and evaluate every planned run that is not already in the store; returns all the sweep's records."""
    from ditlaws.store import LocalStore

    store = LocalStore(sweep.store_dir)
    runs = [r for r in plan_sweep(sweep) if r.skip_reason is None]
    started = time.perf_counter()
    records: dict[str, dict] = {}
    todo: list[PlannedRun] = []
    for i, run in enumerate(runs, 1):
        record = stored_record(store, sweep.study, run.run_id, sweep_fingerprint(run.config, sweep.eval))
        if record is not None:
            log(f"{prefix(i, len(runs), run)}  in store, skipped  val_loss {loss_text(record)}")
            records[run.run_id] = record
        else:
            todo.append(run)
    for run in todo:
        write_job(run.config, sweep)
    busy = []
    for run in todo:
        i = runs.index(run) + 1
        lock = folder_lock(run.config.train.output_dir, label="sweep runner")
        if not lock.acquire(blocking=False):
            holder = lock.holder()
            log(f"{prefix(i, len(runs), run)}  in progress elsewhere ({holder.describe() if holder else 'locked'}), "
                "skipped")
            busy.append(run.run_id)
            continue
        try:
            done = stored_record(store, sweep.study, run.run_id, sweep_fingerprint(run.config, sweep.eval))
            if done is not None:  # finished by another runner while this one was busy
                log(f"{prefix(i, len(runs), run)}  in store (finished by another runner), skipped")
                records[run.run_id] = done
                continue
            resumed = _has_checkpoint(run)
            t0 = time.perf_counter()
            records[run.run_id] = record = run_job(run.config.train.output_dir, log=log, lock=lock)
        finally:
            lock.release()
        log(f"{prefix(i, len(runs), run)}  {'resumed, ' if resumed else ''}trained + evaluated in "
            f"{time.perf_counter() - t0:.1f} s  val_loss {loss_text(record)}")
    if busy:
        log(f"{len(busy)} run(s) were in progress in another process; run the sweep again when it is done to "
            "collect them")
    ordered = [records[r.run_id] for r in runs if r.run_id in records]
    if sweep.eval.generation:
        from ditlaws.sweep.generation import evaluate_generation

        ordered = evaluate_generation(sweep, store, ordered, log=log)
    if sweep.hub.org:  # whatever did not land yet (and the generation metrics) goes to the results repo
        from ditlaws.store.push import push_store

        report = push_store(store.root, sweep.hub, study=sweep.study)
        log(f"hub: {len(report.landed)} item(s) pushed to {sweep.hub.org}/{sweep.study}-results"
            + (f", {len(report.failed)} failed (run `ditlaws push {store.root}` later)" if report.failed else ""))
    log(f"sweep {sweep.study}: {len(ordered)} runs in {store.root} ({time.perf_counter() - started:.0f} s)")
    return ordered


def prefix(i: int, n: int, run: PlannedRun) -> str:
    return f"[{i}/{n}] {run.run_id}  steps {run.steps:,}"


def loss_text(record: dict) -> str:
    val = (record.get("eval") or {}).get("val_loss") or {}
    return f"{val['mean']:.4f} ± {val['sem']:.4f}" if "mean" in val else "n/a"


def _has_checkpoint(run: PlannedRun) -> bool:
    from ditlaws.training.checkpoint import complete_checkpoints

    return bool(complete_checkpoints(Path(run.config.train.output_dir)))
