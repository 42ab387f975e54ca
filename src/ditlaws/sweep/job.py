"""One sweep run end to end — train, validation loss, record into the store — as a function and as a command.

The runner writes each run's job file (`<run folder>/sweep_job.json`: the resolved run config, the evaluation
settings, the store and the sweep fingerprint) and has it executed, in its own process (`run_job`) or as the
command `python -m ditlaws.sweep job <run folder>` through an executor (subprocesses, a Slurm array; under
`accelerate launch` when a run uses several processes). A job is idempotent: a run already in the store with
the same fingerprint is not trained again, and an interrupted one resumes from its latest checkpoint.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

from ditlaws.config import (
    EvalConfig,
    RunConfig,
    SweepConfig,
    SweepEvalConfig,
    config_from_dict,
    identity,
    section_from_dict,
)
from ditlaws.errors import UserError
from ditlaws.jsonio import read_json, write_json_atomic

JOB_FILE = "sweep_job.json"
# The evaluation settings that change a run's validation loss, the number the fit reads.
LOSS_EVAL_KEYS = ("max_samples", "loss_timesteps", "seed")


def sweep_fingerprint(cfg: RunConfig, eval_cfg: EvalConfig) -> str:
    """sha256 of everything that determines a run's record: its identity and how its validation loss is measured."""
    data = {"run": identity(cfg), "eval": {k: getattr(eval_cfg, k) for k in LOSS_EVAL_KEYS}}
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


def job_spec(cfg: RunConfig, sweep: SweepConfig, plan=None) -> dict:
    spec = {"config": json.loads(json.dumps(cfg.to_dict(), default=list)), "eval": dataclasses.asdict(sweep.eval),
            "store": str(sweep.store_dir), "keep_models": sweep.keep_models, "study": sweep.study,
            "fingerprint": sweep_fingerprint(cfg, sweep.eval)}
    if plan is not None:  # the sweep's plan of the run, so training does not plan (open the data) again
        spec["plan"] = plan_to_dict(plan)
    return spec


def write_job(cfg: RunConfig, sweep: SweepConfig, plan=None) -> Path:
    path = Path(cfg.train.output_dir) / JOB_FILE
    write_json_atomic(path, job_spec(cfg, sweep, plan))
    return path


def stored_record(store, study: str, run_id: str, fingerprint: str) -> dict | None:
    """The run's record when it is in the store with this fingerprint; an error when it is there with another."""
    if not store.has_run(study, run_id):
        return None
    record = store.get_run(study, run_id)
    if (record.get("sweep") or {}).get("config_sha256") != fingerprint:
        raise UserError(f"{store.run_path(study, run_id)}: this run is in the store with a different configuration; "
                        "remove the record (and its run folder) or use another study name")
    return record


def run_job(run_dir: str | Path, log=print, lock=None, wait: bool = True, *, start_from: Path | None = None,
            trunk: dict | None = None) -> dict:
    """`_run_job` while holding the store's claim on the run (`<store>/.claims/<study>/<run_id>.lock`, main process
    only): two sweeps with different `out:` sharing one store train a run once; the second waits for the
    first and takes its record (a claim whose holder died goes stale and is taken over)."""
    import os
    from contextlib import nullcontext

    from ditlaws.locks import file_lock
    from ditlaws.store import LocalStore

    spec = read_job_file(Path(run_dir))
    if not isinstance(spec, dict) or not isinstance(spec.get("config"), dict) or \
            not isinstance(spec.get("store"), str) or not isinstance(spec.get("study"), str):
        raise UserError(f"{Path(run_dir) / JOB_FILE}: not a valid job file (expected an object with config, store, "
                        "study, eval, fingerprint); run the sweep again to rewrite it")
    run_id = (spec["config"].get("train") or {}).get("run_id") if isinstance(spec["config"].get("train"), dict) \
        else None
    main = int(os.environ.get("RANK", "0")) == 0
    claim = nullcontext()
    if main and isinstance(run_id, str):
        LocalStore(spec["store"]).run_path(spec["study"], run_id)  # checks both names
        claim = file_lock(Path(spec["store"]) / ".claims" / spec["study"] / run_id, label=f"sweep job {run_dir}",
                          timeout=None)
    with claim:
        return _run_job(run_dir, log, lock, wait, start_from=start_from, trunk=trunk)


def _run_job(run_dir: str | Path, log=print, lock=None, wait: bool = True, *, start_from: Path | None = None,
             trunk: dict | None = None) -> dict:
    """Train (or resume) the run of a job file with the sweep's plan, measure its validation loss, and end it
    through the end-of-run hook (`ditlaws.publish.end_of_run`: record -> store -> model and Hub).

    The run folder's lock is taken by training (or passed in by a caller that holds it, as the in-process runner
    does); a folder another process is working in is a `LockBusy` error naming it. Hub pushes run in the
    background: `wait` bounds the wait at the end by hub.wait_s; `wait=False` leaves them to the caller
    (`ditlaws.publish.wait_pending`). A trunk's branch (`ditlaws.sweep.trunk_job`) starts from `start_from` (its
    trunk's checkpoint) and records `trunk`."""
    from accelerate import PartialState

    from ditlaws.publish import end_of_run, run_hooks
    from ditlaws.store import LocalStore
    from ditlaws.training import train

    run_dir = Path(run_dir)
    spec = read_job_file(run_dir)
    cfg = config_from_dict(spec["config"], source=str(run_dir / JOB_FILE))
    eval_cfg = section_from_dict(SweepEvalConfig, spec.get("eval"), "eval")
    if not isinstance(spec.get("fingerprint"), str):
        raise UserError(f"{run_dir / JOB_FILE}: not a valid job file (no fingerprint); run the sweep again")
    plan = plan_from_dict(spec["plan"], run_dir / JOB_FILE) if spec.get("plan") is not None else None
    store = LocalStore(spec["store"])
    record = stored_record(store, spec["study"], cfg.train.run_id, spec["fingerprint"])
    if record is not None:
        return record
    handed: dict = {}  # training's publisher, for the pushes after the evaluation
    summary = train(cfg, plan=plan, lock=lock, end=lambda summary, model_dir, publisher: handed.update(
        publisher=publisher), start_from=start_from, publisher=run_hooks(cfg)["publisher"])
    if not PartialState().is_main_process:
        return summary
    summary.pop("replica_param_sha256", None)
    val = validation_loss_of(cfg, eval_cfg)
    record = {**summary, "eval": {"val_loss": val},
              "sweep": {"study": spec["study"], "config_sha256": spec["fingerprint"],
                        "eval": {k: getattr(eval_cfg, k) for k in LOSS_EVAL_KEYS}, "output_dir": str(run_dir)}}
    if trunk is not None:
        record["trunk"] = trunk
    end_of_run(run_dir, cfg.hub, record, model_dir=run_dir / "model", store=store, keep_model=spec["keep_models"],
               publisher=handed.get("publisher"), wait=wait)
    return record


def plan_to_dict(plan) -> dict:
    return {"run_id": plan.run_id, "family": plan.family, "model_kwargs": dict(plan.model_kwargs),
            "compute": dataclasses.asdict(plan.compute)}


def plan_from_dict(data, where: Path):
    """A job file's plan back as a `RunPlan` (the same numbers the sweep listed)."""
    from ditlaws.training.budget import ComputePlan
    from ditlaws.training.plan import RunPlan

    try:
        return RunPlan(run_id=data["run_id"], family=data["family"], model_kwargs=dict(data["model_kwargs"]),
                       compute=ComputePlan(**data["compute"]))
    except (KeyError, TypeError) as err:
        raise UserError(f"{where}: the job's plan is not valid ({err}); run the sweep again to rewrite it") from None


def read_job_file(run_dir: Path) -> dict:
    path = run_dir / JOB_FILE
    if not path.is_file():
        raise UserError(f"{path}: no sweep job here (the sweep runner writes it before running the job)")
    try:
        spec = read_json(path)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise UserError(f"{path}: not a valid job file ({err})") from None
    if not isinstance(spec, dict):
        raise UserError(f"{path}: not a valid job file (expected an object with config, store, study, eval, "
                        "fingerprint); run the sweep again to rewrite it")
    return spec


def validation_loss_of(cfg: RunConfig, eval_cfg: EvalConfig) -> dict:
    """Validation loss of a trained run (its model/ folder) on the run's validation split."""
    from ditlaws.data import make_dataloader
    from ditlaws.evaluation import validation_loss
    from ditlaws.evaluation.loading import load_model

    model = load_model(Path(cfg.train.output_dir) / "model").eval()
    batches = make_dataloader(cfg.data, "val", batch_size=eval_cfg.batch_size, seed=cfg.data.seed)
    r = validation_loss(model, batches, timesteps_per_sample=eval_cfg.loss_timesteps, sampler=cfg.train.t_sampler,
                        loc=cfg.train.t_loc, scale=cfg.train.t_scale, seed=eval_cfg.seed,
                        max_samples=eval_cfg.max_samples)
    return {"mean": r["mean"], "sem": r["sem"], "n_samples": r["n_samples"],
            "timesteps_per_sample": r["timesteps_per_sample"], "seed": r["seed"]}

